package procevent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Kind is what happened to a process.
type Kind int

const (
	Fork Kind = iota + 1
	Exec
	Exit
	UID
	GID
)

func (k Kind) String() string {
	switch k {
	case Fork:
		return "fork"
	case Exec:
		return "exec"
	case Exit:
		return "exit"
	case UID:
		return "uid"
	case GID:
		return "gid"
	}
	return "unknown"
}

// Event is one process event. For Fork, PID/TGID are the child's; a child
// whose PID differs from its TGID is a new thread, not a new process.
type Event struct {
	Kind       Kind
	PID, TGID  int
	ParentPID  int
	ParentTGID int
	// Time is when the event was received.
	Time time.Time
}

// Constants from linux/connector.h and linux/cn_proc.h.
const (
	cnIdxProc         = 1
	cnValProc         = 1
	procCnMcastListen = 1
	procCnMcastIgnore = 2

	procEventFork = 0x00000001
	procEventExec = 0x00000002
	procEventUID  = 0x00000004
	procEventGID  = 0x00000040
	procEventExit = 0x80000000

	nlmsgHdrLen = 16
	cnMsgLen    = 20
	// what, cpu, timestamp_ns precede the event union.
	procEventHdrLen = 16
)

// Listener delivers process events until its context ends or it is closed.
type Listener struct {
	fd     int
	events chan Event
	lost   atomic.Uint64
	err    error
	done   chan struct{}
	cancel context.CancelFunc
}

// recvTimeout bounds how long a receive blocks, so cancellation is noticed
// without closing the socket under a blocked reader.
const recvTimeout = 200 * time.Millisecond

// Listen subscribes to process events.
func Listen(ctx context.Context) (*Listener, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("open netlink connector socket: %w", err)
	}
	fail := func(what string, err error) (*Listener, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		return fail("bind netlink connector to the proc events group", err)
	}
	// A burst of forks must not overflow the socket: ask for 4 MiB,
	// beyond rmem_max where we may (root).
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	}
	tv := unix.NsecToTimeval(recvTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fail("set receive timeout", err)
	}
	if err := unix.Sendto(fd, controlMsg(procCnMcastListen), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fail("subscribe to proc events (needs CAP_NET_ADMIN in the host network namespace)", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	l := &Listener{fd: fd, events: make(chan Event, 1024), done: make(chan struct{}), cancel: cancel}
	go l.loop(ctx)
	return l, nil
}

// Events returns the event channel; it is closed when the listener stops.
func (l *Listener) Events() <-chan Event { return l.events }

// Err says why the channel closed; nil after cancellation or Close.
func (l *Listener) Err() error {
	<-l.done
	return l.err
}

// Lost counts receive overruns (ENOBUFS): events the kernel dropped. A
// caller that sees it grow must rescan.
func (l *Listener) Lost() uint64 { return l.lost.Load() }

// Close stops the listener and waits for its goroutine.
func (l *Listener) Close() error {
	l.cancel()
	<-l.done
	return nil
}

func (l *Listener) loop(ctx context.Context) {
	defer close(l.done)
	defer close(l.events)
	defer unix.Close(l.fd)
	defer func() {
		// Best effort: tell the kernel to stop multicasting to us.
		_ = unix.Sendto(l.fd, controlMsg(procCnMcastIgnore), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
	}()
	buf := make([]byte, 64<<10)
	for ctx.Err() == nil {
		n, _, err := unix.Recvfrom(l.fd, buf, 0)
		switch {
		case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ENOBUFS):
			l.lost.Add(1)
			continue
		case err != nil:
			l.err = fmt.Errorf("receive proc events: %w", err)
			return
		}
		now := time.Now()
		evs, err := parse(buf[:n])
		if err != nil {
			continue // a malformed datagram is the kernel's or a spoofer's; skip it
		}
		for _, ev := range evs {
			ev.Time = now
			select {
			case l.events <- ev:
			case <-ctx.Done():
				return
			}
		}
	}
}

// controlMsg builds nlmsghdr + cn_msg + the 4-byte multicast op.
func controlMsg(op uint32) []byte {
	b := make([]byte, nlmsgHdrLen+cnMsgLen+4)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], unix.NLMSG_DONE)
	ne.PutUint32(b[12:], uint32(unix.Getpid()))
	c := b[nlmsgHdrLen:]
	ne.PutUint32(c[0:], cnIdxProc)
	ne.PutUint32(c[4:], cnValProc)
	ne.PutUint16(c[16:], 4)
	ne.PutUint32(c[cnMsgLen:], op)
	return b
}

// parse decodes one datagram, which may hold several netlink messages.
func parse(b []byte) ([]Event, error) {
	ne := binary.NativeEndian
	var out []Event
	for len(b) >= nlmsgHdrLen {
		msgLen := int(ne.Uint32(b[0:]))
		if msgLen < nlmsgHdrLen || msgLen > len(b) {
			return out, fmt.Errorf("netlink message length %d of %d bytes", msgLen, len(b))
		}
		msg := b[nlmsgHdrLen:msgLen]
		if typ := ne.Uint16(b[4:]); typ == unix.NLMSG_DONE || typ == unix.NLMSG_MIN_TYPE {
			if ev, ok := parseCn(msg); ok {
				out = append(out, ev)
			}
		}
		// Messages are 4-byte aligned (NLMSG_ALIGN).
		next := (msgLen + 3) &^ 3
		if next > len(b) {
			break
		}
		b = b[next:]
	}
	return out, nil
}

func parseCn(m []byte) (Event, bool) {
	ne := binary.NativeEndian
	if len(m) < cnMsgLen+procEventHdrLen {
		return Event{}, false
	}
	if ne.Uint32(m[0:]) != cnIdxProc || ne.Uint32(m[4:]) != cnValProc {
		return Event{}, false
	}
	dataLen := int(ne.Uint16(m[16:]))
	data := m[cnMsgLen:]
	if dataLen < len(data) {
		data = data[:dataLen]
	}
	if len(data) < procEventHdrLen {
		return Event{}, false
	}
	what := ne.Uint32(data[0:])
	u := data[procEventHdrLen:]
	field := func(i int) int {
		if len(u) < 4*(i+1) {
			return -1
		}
		return int(int32(ne.Uint32(u[4*i:])))
	}
	var ev Event
	switch what {
	case procEventFork:
		ev = Event{Kind: Fork, ParentPID: field(0), ParentTGID: field(1), PID: field(2), TGID: field(3)}
	case procEventExec:
		ev = Event{Kind: Exec, PID: field(0), TGID: field(1)}
	case procEventExit:
		ev = Event{Kind: Exit, PID: field(0), TGID: field(1)}
	case procEventUID:
		ev = Event{Kind: UID, PID: field(0), TGID: field(1)}
	case procEventGID:
		ev = Event{Kind: GID, PID: field(0), TGID: field(1)}
	default:
		return Event{}, false
	}
	if ev.PID < 0 || ev.TGID < 0 {
		return Event{}, false
	}
	return ev, true
}
