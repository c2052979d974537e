package preempt

import (
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"

	"podwarden/internal/procfs"
)

// Signaler opens a handle on a chosen process. The pidfd implementation
// is the real one; tests on fixture trees, whose pids are not real
// processes, use a recording fake.
type Signaler interface {
	// Open returns a handle on p, or an error wrapping fs.ErrNotExist
	// when p is gone or its pid now names another process.
	Open(p procfs.Proc) (Handle, error)
}

// Handle is one process, held so that its pid cannot be reused under us.
type Handle interface {
	// Signal sends sig; a process that has exited gives errExited.
	Signal(sig unix.Signal) error
	// Exited reports whether the process has exited (without blocking).
	Exited() bool
	// Fd is a descriptor that polls readable when the process exits, -1
	// if there is none.
	Fd() int
	// Mrelease frees a dying process's memory now (process_mrelease).
	Mrelease() error
	Close() error
}

var errExited = errors.New("process has exited")

// signals maps the policy's names to numbers.
var signals = map[string]unix.Signal{
	"SIGINT": unix.SIGINT, "SIGTERM": unix.SIGTERM, "SIGHUP": unix.SIGHUP, "SIGQUIT": unix.SIGQUIT,
	"SIGUSR1": unix.SIGUSR1, "SIGUSR2": unix.SIGUSR2, "SIGKILL": unix.SIGKILL,
}

// pidfdSignaler signals through pidfds (5.3+), falling back to kill(2)
// after re-checking the start time where the kernel has none.
type pidfdSignaler struct {
	proc procfs.FS
}

// Open takes a pidfd on p, then checks that the pid still names the
// process that was chosen (same start time): between reading /proc and
// pidfd_open the process may have exited and its pid been reused.
func (s pidfdSignaler) Open(p procfs.Proc) (Handle, error) {
	fd, err := unix.PidfdOpen(p.PID, 0)
	switch {
	case errors.Is(err, unix.ESRCH):
		return nil, fmt.Errorf("pidfd_open %d: %w", p.PID, fs.ErrNotExist)
	case errors.Is(err, unix.ENOSYS):
		h := &killHandle{pid: p.PID, start: p.StartTime, proc: s.proc}
		if h.Exited() {
			return nil, fmt.Errorf("process %d: %w", p.PID, fs.ErrNotExist)
		}
		return h, nil
	case err != nil:
		return nil, fmt.Errorf("pidfd_open %d: %w", p.PID, err)
	}
	if !sameProcess(s.proc, p) {
		unix.Close(fd)
		return nil, fmt.Errorf("process %d exited before it was opened: %w", p.PID, fs.ErrNotExist)
	}
	return &pidfdHandle{fd: fd, pid: p.PID}, nil
}

// sameProcess reports whether pid still names p and has not exited.
func sameProcess(proc procfs.FS, p procfs.Proc) bool {
	now, err := proc.Read(p.PID, procfs.FieldStat)
	return err == nil && now.StartTime == p.StartTime && now.State != 'Z' && now.State != 'X'
}

type pidfdHandle struct {
	fd, pid int
}

func (h *pidfdHandle) Signal(sig unix.Signal) error {
	err := unix.PidfdSendSignal(h.fd, sig, nil, 0)
	if errors.Is(err, unix.ESRCH) {
		return errExited
	}
	if err != nil {
		return fmt.Errorf("pidfd_send_signal %s to %d: %w", unix.SignalName(sig), h.pid, err)
	}
	return nil
}

func (h *pidfdHandle) Exited() bool {
	fds := []unix.PollFd{{Fd: int32(h.fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&unix.POLLIN != 0
}

func (h *pidfdHandle) Fd() int { return h.fd }

// Mrelease reaps the memory of a process that is already dying (SIGKILL
// sent): it does not wait for the process to finish exiting, which can
// take seconds when it is stuck in reclaim. EINVAL means the kernel did not
// consider it dying yet, ESRCH that it is gone: both are fine.
func (h *pidfdHandle) Mrelease() error {
	_, _, errno := unix.Syscall(unix.SYS_PROCESS_MRELEASE, uintptr(h.fd), 0, 0)
	if errno != 0 && errno != unix.ESRCH {
		return fmt.Errorf("process_mrelease %d: %w", h.pid, errno)
	}
	return nil
}

func (h *pidfdHandle) Close() error {
	if h.fd < 0 {
		return nil
	}
	err := unix.Close(h.fd)
	h.fd = -1
	return err
}

// killHandle is for kernels without pidfd_open (before 5.3): the pid is
// checked against its start time before every signal, which narrows but
// cannot close the reuse window.
type killHandle struct {
	pid   int
	start uint64
	proc  procfs.FS
}

func (h *killHandle) Signal(sig unix.Signal) error {
	if h.Exited() {
		return errExited
	}
	err := unix.Kill(h.pid, sig)
	if errors.Is(err, unix.ESRCH) {
		return errExited
	}
	if err != nil {
		return fmt.Errorf("kill %s %d: %w", unix.SignalName(sig), h.pid, err)
	}
	return nil
}

func (h *killHandle) Exited() bool {
	return !sameProcess(h.proc, procfs.Proc{PID: h.pid, StartTime: h.start})
}

func (h *killHandle) Fd() int         { return -1 }
func (h *killHandle) Mrelease() error { return nil }
func (h *killHandle) Close() error    { return nil }
