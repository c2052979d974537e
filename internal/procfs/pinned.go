package procfs

import (
	"errors"
	"fmt"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrPIDReused is wrapped in the *GoneError SetOOMScoreAdj returns when
// the pid now names another process than the one the caller read: the
// process it meant has exited and the kernel gave its pid to a new one.
var ErrPIDReused = errors.New("pid now names another process (start time differs)")

// SetOOMScoreAdj writes adj to the process that has pid and started at
// startTime (Proc.StartTime), and reads it back. It never writes to a
// stranger: the process directory is opened once, and the start time
// check, the write and the read-back all go through that descriptor. If
// the process exits after the check, the kernel answers ESRCH through the
// old directory even when its pid is reused meanwhile; if it exited
// before, the directory is the new process's and the start times differ.
// Both return an error that matches fs.ErrNotExist (and ErrPIDReused for
// the second).
//
// Start times count clock ticks (10 ms): a pid given to a new process
// within the tick the old one started in is not told apart. For that the
// host's pid counter must wrap within 10 ms of the start (pid_max is at
// least 32,768, 4,194,304 under systemd), or a process must set
// ns_last_pid of the host's pid namespace, which needs CAP_SYS_ADMIN
// there: not something a pod can do.
func (fs FS) SetOOMScoreAdj(pid int, startTime uint64, adj int) error {
	return fs.setOOMScoreAdj(pid, startTime, true, adj)
}

func (fs FS) setOOMScoreAdj(pid int, startTime uint64, check bool, adj int) error {
	if adj < oomScoreAdjMin || adj > oomScoreAdjMax {
		return fmt.Errorf("set oom_score_adj of process %d to %d: out of range [%d, %d]",
			pid, adj, oomScoreAdjMin, oomScoreAdjMax)
	}
	if pid <= 0 {
		return fmt.Errorf("set oom_score_adj of process %d: invalid pid", pid)
	}
	r := getReader(fs)
	defer putReader(r)
	dir, err := openDir(fs.Path(pid, ""))
	if err != nil {
		// A missing directory is reported as the missing file, which is
		// what a caller looks for in the message.
		return fmt.Errorf("set oom_score_adj of process %d to %d: %w", pid, adj, r.fileErr(pid, nameOOMScoreAdj, "open", err))
	}
	defer unix.Close(dir)
	if check {
		b, err := r.readAt(dir, pid, nameStat)
		if err != nil {
			return fmt.Errorf("set oom_score_adj of process %d to %d: %w", pid, adj, err)
		}
		var p Proc
		if err := parseStat(b, &p); err != nil {
			return &ParseError{Path: fs.Path(pid, "stat"), Err: err}
		}
		if p.StartTime != startTime {
			return fmt.Errorf("set oom_score_adj of process %d to %d: %w", pid, adj,
				&GoneError{Path: fs.Path(pid, ""), Err: fmt.Errorf("%w: started at tick %d, not %d", ErrPIDReused, p.StartTime, startTime)})
		}
	}
	if err := writeAt(dir, nameOOMScoreAdj, strconv.Itoa(adj)+"\n"); err != nil {
		return fmt.Errorf("set oom_score_adj of process %d to %d: %w", pid, adj, r.fileErr(pid, nameOOMScoreAdj, "write", err))
	}
	got, err := r.readInt(dir, pid, nameOOMScoreAdj)
	if err != nil {
		return fmt.Errorf("check oom_score_adj of process %d: %w", pid, err)
	}
	if got != adj {
		return fmt.Errorf("set oom_score_adj of process %d to %d: %s reads back %d", pid, adj, fs.Path(pid, "oom_score_adj"), got)
	}
	return nil
}

// writeAt writes data to the NUL-terminated name under dir. No O_CREAT:
// on a fixture tree a missing process must fail as it does on /proc.
func writeAt(dir int, name, data string) error {
	fd, err := openat(dir, unsafe.StringData(name), unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC)
	if err != nil {
		return err
	}
	for {
		_, err = unix.Write(fd, []byte(data))
		if err != unix.EINTR {
			break
		}
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	return err
}
