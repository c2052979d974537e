package procevent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Kind is what happened to a process.
type Kind int

// The kinds reported. The connector also reports sid, ptrace, comm and
// coredump events; they are skipped because no caller needs them yet.
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
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Event is one process event. PIDs are in the initial PID namespace.
//
// The kernel reports threads as well as processes. For Fork, PID and TGID
// are the child's: a child whose PID differs from its TGID is a new thread
// of process TGID, not a new process. Exit also fires once per thread; the
// thread group leader's exit has PID == TGID.
type Event struct {
	Kind Kind
	// PID is the thread and TGID the process (thread group) the event is
	// about.
	PID, TGID int
	// ParentPID and ParentTGID are set for Fork only: the child's real
	// parent. For a new thread that is the parent of the whole process, not
	// the thread that created it (CLONE_THREAD shares the creator's parent).
	ParentPID, ParentTGID int
	// ExitStatus is set for Exit only: the task's exit code in wait(2)
	// status form, e.g. 9 for a SIGKILL, 1<<8 for exit(1).
	ExitStatus int
	// Timestamp is when the kernel emitted the event, on CLOCK_MONOTONIC
	// (time since boot): it orders events across CPUs and measures how long
	// delivery took.
	Timestamp time.Duration
	// Time is when the event was received.
	Time time.Time
}

// Layouts and constants from linux/netlink.h, linux/connector.h and
// linux/cn_proc.h.
const (
	cnIdxProc = 1
	cnValProc = 1

	procCnMcastListen = 1
	procCnMcastIgnore = 2

	procEventNone = 0x00000000
	procEventFork = 0x00000001
	procEventExec = 0x00000002
	procEventUID  = 0x00000004
	procEventGID  = 0x00000040
	procEventExit = 0x80000000

	nlmsgHdrLen = 16 // struct nlmsghdr
	cnMsgLen    = 20 // struct cn_msg without data: cb_id{idx,val}, seq, ack, len, flags
	// struct proc_event before its union: what, cpu, timestamp_ns (8-aligned).
	procEventHdrLen = 16
)

// errMalformed marks a datagram that does not follow the kernel's layout.
var errMalformed = errors.New("malformed proc connector datagram")

// parse decodes one netlink datagram, which may hold several netlink
// messages. It returns the events decoded before any error.
func parse(b []byte) ([]Event, error) {
	return appendEvents(nil, b)
}

// appendEvents is parse appending to dst, so that the receive loop reuses
// one slice.
func appendEvents(dst []Event, b []byte) ([]Event, error) {
	err := walk(b, func(cn []byte) error {
		ev, ok, err := decodeEvent(cn)
		if ok {
			dst = append(dst, ev)
		}
		return err
	})
	return dst, err
}

// walk calls fn with each connector message (struct cn_msg and its data,
// bounded by cn_msg.len) of the process events connector in datagram b.
// Other netlink message types and other connector users are skipped.
func walk(b []byte, fn func(cn []byte) error) error {
	ne := binary.NativeEndian
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			return fmt.Errorf("%w: %d trailing bytes", errMalformed, len(b))
		}
		msgLen := int(ne.Uint32(b[0:]))
		if msgLen < nlmsgHdrLen || msgLen > len(b) {
			return fmt.Errorf("%w: netlink message length %d in %d bytes", errMalformed, msgLen, len(b))
		}
		// The kernel sends connector messages as NLMSG_DONE; anything else
		// (NOOP, OVERRUN) carries no process event.
		if ne.Uint16(b[4:]) == unix.NLMSG_DONE {
			cn := b[nlmsgHdrLen:msgLen]
			if len(cn) < cnMsgLen {
				return fmt.Errorf("%w: connector message of %d bytes", errMalformed, len(cn))
			}
			dataLen := int(ne.Uint16(cn[16:]))
			if cnMsgLen+dataLen > len(cn) {
				return fmt.Errorf("%w: connector data length %d in %d bytes", errMalformed, dataLen, len(cn)-cnMsgLen)
			}
			if ne.Uint32(cn[0:]) == cnIdxProc && ne.Uint32(cn[4:]) == cnValProc {
				if err := fn(cn[:cnMsgLen+dataLen]); err != nil {
					return err
				}
			}
		}
		// Messages start on 4-byte boundaries (NLMSG_ALIGN); the last one
		// may lack its padding.
		next := (msgLen + 3) &^ 3
		if next >= len(b) {
			return nil
		}
		b = b[next:]
	}
	return nil
}

// decodeEvent decodes the proc_event in connector message cn. ok is false
// for events that are not reported (acks, kinds no caller needs).
func decodeEvent(cn []byte) (ev Event, ok bool, err error) {
	ne := binary.NativeEndian
	data := cn[cnMsgLen:]
	if len(data) < procEventHdrLen {
		return Event{}, false, fmt.Errorf("%w: proc event of %d bytes", errMalformed, len(data))
	}
	what := ne.Uint32(data[0:])
	ts := ne.Uint64(data[8:])
	u := data[procEventHdrLen:]
	var need int
	switch what {
	case procEventFork:
		need = 16 // parent_pid, parent_tgid, child_pid, child_tgid
	case procEventExit:
		need = 16 // process_pid, process_tgid, exit_code, exit_signal (parents since 4.x)
	case procEventExec, procEventUID, procEventGID:
		need = 8 // process_pid, process_tgid
	default:
		return Event{}, false, nil
	}
	if len(u) < need {
		return Event{}, false, fmt.Errorf("%w: event %#x with %d of %d union bytes", errMalformed, what, len(u), need)
	}
	word := func(i int) int { return int(int32(ne.Uint32(u[4*i:]))) }
	// timestamp_ns is a u64 of nanoseconds since boot: it fits a Duration
	// for 292 years; clamp rather than wrap on a corrupt value.
	ev.Timestamp = time.Duration(min(ts, 1<<63-1))
	switch what {
	case procEventFork:
		ev.Kind = Fork
		ev.ParentPID, ev.ParentTGID, ev.PID, ev.TGID = word(0), word(1), word(2), word(3)
	case procEventExec:
		ev.Kind = Exec
		ev.PID, ev.TGID = word(0), word(1)
	case procEventExit:
		ev.Kind = Exit
		ev.PID, ev.TGID, ev.ExitStatus = word(0), word(1), int(ne.Uint32(u[8:]))
	case procEventUID:
		ev.Kind = UID
		ev.PID, ev.TGID = word(0), word(1)
	case procEventGID:
		ev.Kind = GID
		ev.PID, ev.TGID = word(0), word(1)
	}
	if ev.PID < 0 || ev.TGID < 0 || ev.ParentPID < 0 || ev.ParentTGID < 0 {
		return Event{}, false, fmt.Errorf("%w: negative pid in %v event", errMalformed, ev.Kind)
	}
	return ev, true, nil
}

// findAck looks in datagram b for the kernel's acknowledgement of the
// control message sent with ack number cookie: a PROC_EVENT_NONE event
// whose cn_msg.ack is cookie+1. The kernel overwrites the sequence number
// (send_msg in drivers/connector/cn_proc.c), so the ack number is the only
// way to tell our acknowledgement from another subscriber's. errno is the
// kernel's verdict, 0 for success.
func findAck(b []byte, cookie uint32) (found bool, errno unix.Errno, err error) {
	ne := binary.NativeEndian
	err = walk(b, func(cn []byte) error {
		data := cn[cnMsgLen:]
		if len(data) < procEventHdrLen+4 || ne.Uint32(data[0:]) != procEventNone {
			return nil
		}
		if ne.Uint32(cn[12:]) == cookie+1 {
			found, errno = true, unix.Errno(ne.Uint32(data[procEventHdrLen:]))
		}
		return nil
	})
	return found, errno, err
}

// controlMsg builds the subscription message: nlmsghdr, cn_msg and the
// 4-byte proc_cn_mcast_op, the form every kernel accepts (6.6 added an
// 8-byte form with an event filter that older kernels silently ignore).
func controlMsg(op, cookie uint32) []byte {
	ne := binary.NativeEndian
	b := make([]byte, nlmsgHdrLen+cnMsgLen+4)
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], unix.NLMSG_DONE)
	cn := b[nlmsgHdrLen:]
	ne.PutUint32(cn[0:], cnIdxProc)
	ne.PutUint32(cn[4:], cnValProc)
	ne.PutUint32(cn[12:], cookie)
	ne.PutUint16(cn[16:], 4)
	ne.PutUint32(cn[cnMsgLen:], op)
	return b
}
