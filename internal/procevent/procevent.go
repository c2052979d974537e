package procevent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// rcvBuf is the socket receive buffer asked for. Each event costs a
	// netlink skb (about 1 KiB of buffer accounting), so 8 MiB rides out a
	// fork storm of several thousand processes while the reader is busy;
	// it is charged only while events are queued.
	rcvBuf = 8 << 20
	// eventBuf is the channel capacity: it absorbs bursts so that the
	// kernel's queue, not ours, is the one that overflows (and says so).
	eventBuf = 1024
	// ackTimeout bounds the wait for the kernel to acknowledge the
	// subscription. The ack is queued before sendto returns, so only a
	// request the kernel ignored (another PID or user namespace) waits.
	ackTimeout = 2 * time.Second
	// recvBufSize holds any datagram: connector messages are at most
	// CONNECTOR_MAX_MSG_SIZE (16 KiB).
	recvBufSize = 64 << 10
)

// Listener delivers process events until its context ends, it is closed,
// or the socket fails.
type Listener struct {
	file   *os.File // the netlink socket, registered with the runtime poller
	raw    syscall.RawConn
	events chan Event
	lost   atomic.Uint64
	cancel context.CancelFunc
	done   chan struct{} // closed when the receive goroutine has returned

	stopOnce sync.Once
	closeErr error // from closing file; written once in stop

	mu  sync.Mutex
	err error
}

// Listen subscribes to the kernel's process events. It returns once the
// kernel has acknowledged the subscription, so every fork after Listen
// returns is reported. Cancelling ctx stops the listener as Close does.
func Listen(ctx context.Context) (*Listener, error) {
	return listen(ctx, rcvBuf)
}

func listen(ctx context.Context, rcvBufBytes int) (*Listener, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("subscribing to proc events: %w", err)
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("opening netlink connector socket: %w", err)
	}
	// Groups is a bit mask: group CN_IDX_PROC is bit CN_IDX_PROC-1.
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (cnIdxProc - 1)}); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("joining the proc events multicast group (needs CAP_NET_ADMIN before Linux 6.6): %w", err)
		}
		return nil, fmt.Errorf("joining the proc events multicast group: %w", err)
	}
	// SO_RCVBUFFORCE passes net.core.rmem_max but needs CAP_NET_ADMIN;
	// without it take what rmem_max allows. Neither failure is fatal: a
	// small buffer only means more overruns, which Lost reports.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBufBytes) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBufBytes)
	}
	// A non-blocking fd in an *os.File is served by the runtime poller:
	// reads park the goroutine instead of a thread, take deadlines, and
	// Close wakes a blocked reader without the fd-reuse race of closing a
	// raw fd under it.
	f := os.NewFile(uintptr(fd), "netlink-connector")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("netlink connector socket: %w", err)
	}
	l := &Listener{file: f, raw: raw, events: make(chan Event, eventBuf), done: make(chan struct{})}
	pending, err := l.subscribe(ctx)
	if err != nil {
		l.stop() // unsubscribes too, in case the kernel took the request
		return nil, err
	}
	ctx, l.cancel = context.WithCancel(ctx)
	context.AfterFunc(ctx, l.stop)
	go l.run(ctx, pending)
	return l, nil
}

// subscribe sends PROC_CN_MCAST_LISTEN and waits for the kernel's ack.
// Events that arrive first are returned so that they are not lost.
func (l *Listener) subscribe(ctx context.Context) ([]Event, error) {
	cookie := rand.Uint32()
	if err := l.send(controlMsg(procCnMcastListen, cookie)); err != nil {
		if errors.Is(err, unix.ECONNREFUSED) {
			return nil, fmt.Errorf("subscribing to proc events: %w (the connector exists only in the host network namespace)", err)
		}
		return nil, fmt.Errorf("subscribing to proc events: %w", err)
	}
	wait := ackTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < wait {
		wait = time.Until(d)
	}
	if err := l.file.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return nil, fmt.Errorf("setting a deadline on the netlink socket: %w", err)
	}
	// Cancelling ctx moves the deadline to the past to end the wait now.
	stop := context.AfterFunc(ctx, func() { _ = l.file.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	var pending []Event
	buf := make([]byte, recvBufSize)
	for {
		n, err := l.recv(buf)
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("waiting for the proc events subscription: %w", ctx.Err())
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, fmt.Errorf("subscribing to proc events: no acknowledgement within %v: the kernel ignores subscribers outside the initial user and PID namespaces", wait.Round(time.Millisecond))
		case errors.Is(err, unix.ENOBUFS):
			l.lost.Add(1)
			continue
		case err != nil:
			return nil, fmt.Errorf("waiting for the proc events subscription: %w", err)
		}
		now := time.Now()
		found, errno, err := findAck(buf[:n], cookie)
		if err != nil {
			l.lost.Add(1)
			continue
		}
		evs, _ := parse(buf[:n])
		for i := range evs {
			evs[i].Time = now
		}
		pending = append(pending, evs...)
		if !found {
			continue
		}
		if errno != 0 {
			return nil, fmt.Errorf("subscribing to proc events: kernel refused: %w", errno)
		}
		if err := l.file.SetReadDeadline(time.Time{}); err != nil {
			return nil, fmt.Errorf("clearing the netlink socket deadline: %w", err)
		}
		return pending, nil
	}
}

// Events returns the event channel. It is closed when the listener stops:
// ctx done, Close, or a socket failure (see Err).
func (l *Listener) Events() <-chan Event { return l.events }

// Err says why the event channel closed: nil while running and after ctx
// cancellation or Close, the socket error otherwise.
func (l *Listener) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Lost counts receive overruns (ENOBUFS). Each is one episode of drops:
// the kernel reports the first event it could not queue, then drops
// silently until the reader has emptied the socket (NETLINK_S_CONGESTED),
// so one overrun can hide many events. Malformed datagrams, which the
// kernel never sends, are counted too. A caller that sees Lost grow must
// rescan.
func (l *Listener) Lost() uint64 { return l.lost.Load() }

// Close stops the listener, unsubscribes, and waits for its goroutine to
// return. It is safe to call more than once and concurrently with
// cancellation of the Listen context.
func (l *Listener) Close() error {
	l.cancel()
	<-l.done
	return l.closeErr
}

// stop unsubscribes and closes the socket, which wakes a blocked receive.
// It runs from the context's AfterFunc or from run on a socket failure;
// the Once makes the second caller wait until the first has finished.
func (l *Listener) stop() {
	l.stopOnce.Do(func() {
		// Linux before 6.6 counts listeners only through LISTEN and
		// IGNORE, not on close: without IGNORE it would keep building
		// events for nobody.
		_ = l.raw.Control(func(fd uintptr) {
			_ = unix.Sendto(int(fd), controlMsg(procCnMcastIgnore, 0), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		})
		if err := l.file.Close(); err != nil {
			l.closeErr = fmt.Errorf("closing the netlink connector socket: %w", err)
		}
	})
}

func (l *Listener) run(ctx context.Context, pending []Event) {
	defer close(l.done)
	defer close(l.events)
	defer l.stop()
	for _, ev := range pending {
		if !l.deliver(ctx, ev) {
			return
		}
	}
	buf := make([]byte, recvBufSize)
	var evs []Event
	for {
		n, err := l.recv(buf)
		switch {
		case ctx.Err() != nil:
			return // stopped on purpose: the error is the closed socket
		case errors.Is(err, unix.ENOBUFS):
			// The kernel dropped events; the socket stays usable.
			l.lost.Add(1)
			continue
		case err != nil:
			l.mu.Lock()
			l.err = fmt.Errorf("receiving proc events: %w", err)
			l.mu.Unlock()
			return
		}
		now := time.Now()
		evs, err = appendEvents(evs[:0], buf[:n])
		if err != nil {
			l.lost.Add(1)
		}
		for i := range evs {
			evs[i].Time = now
			if !l.deliver(ctx, evs[i]) {
				return
			}
		}
	}
}

// deliver blocks until the consumer takes ev or ctx ends. Blocking is the
// backpressure we want: the kernel then overruns the socket and Lost tells
// the caller to rescan, instead of events vanishing silently here.
func (l *Listener) deliver(ctx context.Context, ev Event) bool {
	select {
	case l.events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// recv reads one datagram sent by the kernel, waiting in the runtime
// poller. Datagrams from user space (a root process may send to the
// group) are dropped: only the kernel speaks for the connector.
func (l *Listener) recv(buf []byte) (int, error) {
	for {
		var (
			n    int
			from unix.Sockaddr
			rerr error
		)
		err := l.raw.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN
		})
		if err != nil {
			return 0, err
		}
		if rerr == unix.EINTR {
			continue
		}
		if rerr != nil {
			return 0, rerr
		}
		if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != 0 {
			continue
		}
		return n, nil
	}
}

// send writes one message to the kernel connector.
func (l *Listener) send(msg []byte) error {
	var serr error
	err := l.raw.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	})
	if err != nil {
		return err
	}
	return serr
}
