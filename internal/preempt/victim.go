package preempt

import (
	"fmt"
	"path"
	"strings"
	"time"

	"podwarden/internal/oom"
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

// choice is the outcome of choosing a victim among a container's
// processes.
type choice struct {
	victim *procfs.Proc
	points int64
	// kept are the processes spared, with the rule that spared each.
	kept []keptProc
}

type keptProc struct {
	p    procfs.Proc
	rule string
}

// keepRule returns why p is never chosen ("" when it may be): the
// container's init, or a keep pattern matching its name (comm, as the
// kernel truncates it to 15 bytes), the base name of argv[0], or of
// argv[1] (the script an interpreter runs: python jupyter-lab).
func keepRule(p procfs.Proc, keep []string, keepInit bool) string {
	if keepInit && p.NSPID == 1 {
		return "container init (pid 1)"
	}
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

// chooseVictim picks, among procs, the one the kernel's badness ranks
// highest once the kept ones are set aside. Processes without memory
// (zombies, exiting, kernel threads) are never chosen. totalPages is the
// size of the domain that ran short (node RAM+swap or the cgroup limit),
// which scales oom_score_adj as in the kernel.
func chooseVictim(procs []procfs.Proc, keep []string, keepInit bool, totalPages uint64) choice {
	var c choice
	var tasks []oom.Task
	byPID := map[int]int{}
	for i, p := range procs {
		if p.Kernel || p.State == 'Z' || p.State == 'X' || p.RSS() == 0 {
			continue
		}
		if rule := keepRule(p, keep, keepInit); rule != "" {
			c.kept = append(c.kept, keptProc{p, rule})
			continue
		}
		byPID[p.PID] = i
		tasks = append(tasks, oom.Task{
			PID: p.PID, Comm: p.Comm, Adj: p.OOMScoreAdj, RSSPages: p.RSS() / oom.PageSize,
			SwapPages: p.Swap / oom.PageSize, PgTableBytes: p.PgTables,
		})
	}
	// Predict ranks as the kernel does (points, then the newer task); no
	// group flag: one process is all this ever ends.
	order := oom.Predict(tasks, oom.Domain{TotalPages: totalPages}, nil)
	if len(order) > 0 {
		p := procs[byPID[order[0].Task.PID]]
		c.victim, c.points = &p, order[0].Points
	}
	return c
}

// keptSummary names the spared processes for the user, biggest first is
// not needed: they are few; at most five are listed.
func (c choice) keptSummary() string {
	if len(c.kept) == 0 {
		return ""
	}
	var parts []string
	for i, k := range c.kept {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("%d more", len(c.kept)-5))
			break
		}
		parts = append(parts, fmt.Sprintf("%s (pid %d, %s)", k.p.Comm, k.p.PID, k.rule))
	}
	return strings.Join(parts, ", ")
}
