package preempt

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"podwarden/internal/procfs"
)

// procRef is one process: its pid and the start time that tells it from
// a later process given the same pid.
type procRef struct {
	pid   int
	start uint64
}

// rootRef is rootProc's choice with its start time: the message file is
// written up to a cooldown after the choice, when the pid may name
// another process.
func rootRef(procs []procfs.Proc, a attribution) procRef {
	pid := rootProc(procs, a)
	for _, p := range procs {
		if p.PID == pid {
			return procRef{pid: pid, start: p.StartTime}
		}
	}
	return procRef{}
}

// writeMessage writes data to name inside the root of process ref, and
// only of that process. /proc/PID is opened first and everything after
// goes through it: the start time is checked after the open, so the
// directory is ref's (a process that held the pid when it was opened and
// still has ref's start time is ref), and if ref exits later the kernel
// refuses the "root" lookup through the old directory even when the pid
// is reused meanwhile. The same binding as procfs.SetOOMScoreAdj.
//
// Opening another process's /proc/PID/root is a ptrace read check
// (PTRACE_MODE_READ_FSCREDS): a container process of another uid, or one
// with capabilities the agent lacks (a root container keeps CHOWN, FOWNER,
// SETUID... that the agent drops), needs CAP_SYS_PTRACE, which the chart
// grants when preempt.messageFile is set.
func writeMessage(fs procfs.FS, ref procRef, name, data string) error {
	if ref.pid <= 0 {
		return fmt.Errorf("write %s: no process of the container to write through", name)
	}
	dirPath := fs.Path(ref.pid, "")
	dir, err := unix.Open(dirPath, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("write %s through process %d: open %s: %w", name, ref.pid, dirPath, wrapGone(err))
	}
	defer unix.Close(dir)
	p, err := fs.Read(ref.pid, procfs.FieldStat)
	if err != nil {
		return fmt.Errorf("write %s through process %d: %w", name, ref.pid, err)
	}
	if p.StartTime != ref.start {
		return fmt.Errorf("write %s through process %d: %w", name, ref.pid,
			&procfs.GoneError{Path: dirPath, Err: fmt.Errorf("%w: started at tick %d, not %d", procfs.ErrPIDReused, p.StartTime, ref.start)})
	}
	root, err := unix.Openat(dir, "root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		return fmt.Errorf("write %s through process %d: open %s/root: %w (opening another user's or a more capable process's root needs CAP_SYS_PTRACE)", name, ref.pid, dirPath, err)
	}
	if err != nil {
		return fmt.Errorf("write %s through process %d: open %s/root: %w", name, ref.pid, dirPath, wrapGone(err))
	}
	defer unix.Close(root)
	return writeAtRoot(root, fs.Path(ref.pid, "root"), name, data)
}

// wrapGone makes a process that exited (ENOENT, or ESRCH through a
// directory opened before it exited) match fs.ErrNotExist.
func wrapGone(err error) error {
	if errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("process gone: %w (%w)", err, os.ErrNotExist)
	}
	return err
}

// writeInRoot writes data to name inside the file system rooted at root
// (/proc/PID/root of a container process). openat2's RESOLVE_IN_ROOT keeps
// every symlink inside that root, so a container cannot point the agent at
// a host file; the parent directory must exist.
func writeInRoot(root, name, data string) error {
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", root, err)
	}
	defer unix.Close(dir)
	return writeAtRoot(dir, root, name, data)
}

// writeAtRoot is writeInRoot on an open root directory; rootName is for
// messages.
func writeAtRoot(dir int, rootName, name, data string) error {
	fd, err := unix.Openat2(dir, strings.TrimPrefix(name, "/"), &unix.OpenHow{
		Flags:   unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK,
		Mode:    0o644,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("openat2 (Linux 5.6+) unavailable: %w", err)
	}
	if err != nil {
		return fmt.Errorf("open %s in %s: %w", name, rootName, err)
	}
	f := os.NewFile(uintptr(fd), name)
	_, err = f.WriteString(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
