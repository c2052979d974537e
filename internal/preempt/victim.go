package preempt

import (
	"path"
	"strings"
	"time"

	"podwarden/internal/procfs"
)

// victimFields are what the choice reads of each process: identity
// (stat: comm, state, start time), memory and namespace pid (status) and
// the adj the kernel would weigh. None of these files takes the process's
// mmap_lock; the command line (for keep patterns) does, and is read apart
// with a deadline (cmdlinesWithin).
const victimFields = procfs.FieldStat | procfs.FieldStatus | procfs.FieldOOMScoreAdj

// cmdlineWait bounds the wait for a command line. Reading
// /proc/PID/cmdline takes the process's mmap_lock, which a hog in direct
// reclaim can hold, behind a queued mmap, for seconds: exactly when the
// engine must not wait.
const cmdlineWait = 200 * time.Millisecond

// cmdlinesWithin reads the command lines of pids at once and returns what
// came within d; a pid whose read did not come maps to nil, and the keep
// patterns then see only its name. A read that gave up finishes in its
// goroutine when the lock is free.
func cmdlinesWithin(proc procfs.FS, pids []int, d time.Duration) map[int][]string {
	type res struct {
		pid int
		c   []string
	}
	ch := make(chan res, len(pids))
	for _, pid := range pids {
		go func() {
			p, err := proc.Read(pid, procfs.FieldCmdline)
			if err != nil {
				ch <- res{pid, nil}
				return
			}
			ch <- res{pid, p.Cmdline}
		}()
	}
	out := make(map[int][]string, len(pids))
	t := time.NewTimer(d)
	defer t.Stop()
	for range pids {
		select {
		case r := <-ch:
			out[r.pid] = r.c
		case <-t.C:
			return out
		}
	}
	return out
}

type keptProc struct {
	p    procfs.Proc
	rule string
}

// keepRule returns the keep pattern matching p's name ("" when none): its
// comm (as the kernel truncates it to 15 bytes), the base name of argv[0],
// or of argv[1] (the script an interpreter runs: python jupyter-lab). The
// process sets all three itself, so a match only ever spares a bystander
// in a family that grew (attribute), never the process that grew.
func keepRule(p procfs.Proc, keep []string) string {
	names := []string{p.Comm}
	if len(p.Cmdline) > 0 {
		names = append(names, path.Base(p.Cmdline[0]))
	}
	if len(p.Cmdline) > 1 && !strings.HasPrefix(p.Cmdline[1], "-") {
		names = append(names, path.Base(p.Cmdline[1]))
	}
	for _, pat := range keep {
		// The kernel keeps 15 bytes of a name: "jupyterhub-singleuser"
		// shows as "jupyterhub-sing".
		short := pat
		if len(short) > commLen {
			short = short[:commLen]
		}
		for i, n := range names {
			if ok, _ := path.Match(pat, n); ok {
				return "keep " + pat
			}
			if i == 0 && len(n) == commLen {
				if ok, _ := path.Match(short, n); ok {
					return "keep " + pat
				}
			}
		}
	}
	return ""
}

// commLen is TASK_COMM_LEN-1.
const commLen = 15
