package preempt

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"podwarden/internal/oom"
	"podwarden/internal/procfs"
)

// The culprit is chosen by what a process has done, never by what it calls
// itself: the process (or the family of processes) whose private memory
// grew while the scope ran short. A name is chosen by the process
// (prctl(PR_SET_NAME), exec -a, a file named jupyter-lab) and so buys
// nothing against growth; the container's init is known by what no process
// can change: it is the oldest process of the container whose parent is
// outside it (the runtime's shim), not whatever is pid 1 of some inner pid
// namespace (unshare --pid --fork).

// memPoint is one reading of a process's private memory.
type memPoint struct {
	at  time.Time
	mem uint64 // RssAnon + VmSwap
}

// procMem is the history of one process (pid and start time).
type procMem struct {
	start uint64
	first time.Time // the snapshot it was first seen in
	pts   []memPoint
}

// procHist is what the engine remembers of a target's processes: their
// private memory at every snapshot within the recent window, and when the
// snapshots were taken. A process absent from an earlier snapshot was born
// (or moved in) since, so all its memory is growth; a process present in
// none (the first snapshot) has no growth yet: its size is not evidence.
type procHist struct {
	procs map[int]*procMem
	snaps []time.Time
}

// private is the memory a kill gives back: anonymous resident memory and
// swap. Shmem and tmpfs stay charged until their files go, page cache is
// reclaimable anyway and kernel memory is not the process's.
func private(p procfs.Proc) uint64 { return p.RSSAnon + p.Swap }

// add records a snapshot of procs taken at now and forgets what is older
// than keep, and processes that are gone.
func (ph *procHist) add(now time.Time, procs []procfs.Proc, keep time.Duration) {
	if ph.procs == nil {
		ph.procs = map[int]*procMem{}
	}
	seen := make(map[int]bool, len(procs))
	for _, p := range procs {
		if p.Kernel || p.State == 'Z' || p.State == 'X' {
			continue
		}
		seen[p.PID] = true
		pm := ph.procs[p.PID]
		if pm == nil || pm.start != p.StartTime {
			pm = &procMem{start: p.StartTime, first: now}
			ph.procs[p.PID] = pm
		}
		pm.pts = append(pm.pts, memPoint{now, private(p)})
		cut := 0
		for cut < len(pm.pts)-1 && now.Sub(pm.pts[cut].at) > keep {
			cut++
		}
		pm.pts = pm.pts[cut:]
	}
	for pid := range ph.procs {
		if !seen[pid] {
			delete(ph.procs, pid)
		}
	}
	ph.snaps = append(ph.snaps, now)
	cut := 0
	for cut < len(ph.snaps)-1 && now.Sub(ph.snaps[cut]) > keep {
		cut++
	}
	ph.snaps = ph.snaps[cut:]
}

// growth is how much p's private memory rose within window before now:
// its current value minus the lowest seen within the window, all of it if
// p appeared after an earlier snapshot within the window. known is false
// when there is no earlier snapshot to compare with.
func (ph *procHist) growth(p procfs.Proc, now time.Time, window time.Duration) (grew uint64, known bool) {
	base := ph.base(now, window)
	if base.IsZero() {
		return 0, false
	}
	cur := private(p)
	pm := ph.procs[p.PID]
	if pm == nil || pm.start != p.StartTime || pm.first.After(base) {
		return cur, true // born since the base snapshot: all of it is new
	}
	lo := cur
	for _, pt := range pm.pts {
		if now.Sub(pt.at) <= window {
			lo = min(lo, pt.mem)
		}
	}
	return cur - lo, true
}

// base is the snapshot growth is measured from: the earliest within window
// before now; zero when there is none.
func (ph *procHist) base(now time.Time, window time.Duration) time.Time {
	for _, t := range ph.snaps {
		if now.Sub(t) <= window && t.Before(now) {
			return t
		}
	}
	return time.Time{}
}

// growNoise is the least rise of one process that counts as growth: below
// it, allocator and stack jitter.
const growNoise = 1 << 20

// attribution is the outcome of looking for the culprit in one container.
type attribution struct {
	// head is the culprit: the process that grew, or the parent of the
	// family that did. nil when there is none.
	head *procfs.Proc
	// members are the processes to end, head first (the parent stops
	// spawning before its children are signalled).
	members []procfs.Proc
	family  bool
	// grew is the growth of the members, total that of every process of
	// the container, within the recent window.
	grew, total uint64
	// frees is what ending the members gives back (private memory).
	frees uint64
	// init is the container's init (0 unknown); kept the processes the
	// family spared.
	init int
	kept []keptProc
	// known is false when the engine has no earlier snapshot of the
	// container's processes to compare with.
	known bool
}

// containerInit finds the container's init: the pid the runtime reported
// when the agent knows it and it is still there, else the oldest process
// whose parent is outside the container (the shim, or runc before it
// exec'd). A process started inside the container, in whatever pid
// namespace, has its parent inside.
func containerInit(procs []procfs.Proc, reported int) int {
	in := make(map[int]bool, len(procs))
	for _, p := range procs {
		in[p.PID] = true
	}
	if reported > 0 && in[reported] {
		return reported
	}
	best := -1
	for i, p := range procs {
		if in[p.PPID] || p.Kernel {
			continue
		}
		if best < 0 || p.StartTime < procs[best].StartTime || p.StartTime == procs[best].StartTime && p.PID < procs[best].PID {
			best = i
		}
	}
	if best < 0 {
		return 0
	}
	return procs[best].PID
}

// attribute finds what grew in a container: one process when it holds at
// least half the container's process growth, else the family whose
// subtree does (the lowest process whose descendants hold half of it: the
// parent of a fork storm). keep patterns and the init spare bystanders in
// a family only, and only processes that did not grow themselves and were
// there before the window: a name never protects growth.
func attribute(procs []procfs.Proc, ph *procHist, now time.Time, window time.Duration, reportedInit int, keep []string, keepInit bool) attribution {
	var a attribution
	a.init = containerInit(procs, reportedInit)
	live := make([]procfs.Proc, 0, len(procs))
	for _, p := range procs {
		if !p.Kernel && p.State != 'Z' && p.State != 'X' {
			live = append(live, p)
		}
	}
	grew := make(map[int]uint64, len(live))
	a.known = true
	for _, p := range live {
		g, known := ph.growth(p, now, window)
		if !known {
			a.known = false
			return a
		}
		if g >= growNoise {
			grew[p.PID] = g
			a.total += g
		}
	}
	if a.total == 0 {
		return a
	}
	children := map[int][]int{}
	byPID := make(map[int]procfs.Proc, len(live))
	for _, p := range live {
		byPID[p.PID] = p
	}
	var roots []int
	for _, p := range live {
		if _, ok := byPID[p.PPID]; ok && p.PPID != p.PID {
			children[p.PPID] = append(children[p.PPID], p.PID)
		} else {
			roots = append(roots, p.PID)
		}
	}
	// Subtree growth, children before parents.
	sub := map[int]uint64{}
	var walk func(pid int) uint64
	walk = func(pid int) uint64 {
		s := grew[pid]
		for _, c := range children[pid] {
			s += walk(c)
		}
		sub[pid] = s
		return s
	}
	for _, r := range roots {
		walk(r)
	}
	// One process that holds half the growth is the culprit on its own.
	top := 0
	for pid, g := range grew {
		if top == 0 || g > grew[top] || g == grew[top] && pid < top {
			top = pid
		}
	}
	if 2*grew[top] >= a.total {
		p := byPID[top]
		a.head, a.members, a.grew = &p, []procfs.Proc{p}, grew[top]
		a.frees = private(p)
		return a
	}
	// A family: descend from the root holding the most growth while one
	// child holds half of the total.
	slices.SortFunc(roots, func(x, y int) int { return cmp.Or(cmp.Compare(sub[y], sub[x]), cmp.Compare(x, y)) })
	head := roots[0]
	for {
		next := 0
		for _, c := range children[head] {
			if 2*sub[c] >= a.total && (next == 0 || sub[c] > sub[next]) {
				next = c
			}
		}
		if next == 0 {
			break
		}
		head = next
	}
	spared := func(p procfs.Proc) string {
		if grew[p.PID] > 0 {
			return "" // growth is never spared
		}
		if keepInit && p.PID == a.init {
			return "container init"
		}
		if pm := ph.procs[p.PID]; pm == nil || pm.start != p.StartTime || now.Sub(pm.first) < window {
			return "" // new: its name is not evidence of anything
		}
		return keepRule(p, keep)
	}
	a.family = true
	// Below a spared parent (the init or a kept server forking the storm)
	// only what grew joins the family, and only with a real share of it: at
	// least a quarter of the mean growth, so a small process a user starts
	// meanwhile is not swept up with the storm.
	bar := a.total / uint64(4*len(grew))
	var add func(pid int, all bool)
	add = func(pid int, all bool) {
		p := byPID[pid]
		rule := spared(p)
		switch {
		case rule != "":
			a.kept = append(a.kept, keptProc{p, rule})
			all = false
		case all || grew[pid] >= bar:
			a.members = append(a.members, p)
			a.grew += grew[pid]
			a.frees += private(p)
			all = true
		}
		for _, c := range children[pid] {
			if all || sub[c] > 0 {
				add(c, all)
			}
		}
	}
	add(head, true)
	if len(a.members) > 0 {
		h := a.members[0]
		a.head = &h
	}
	return a
}

// summary names the members for the user: the head and how many others.
func (a attribution) summary(window time.Duration) string {
	if a.head == nil {
		return ""
	}
	if !a.family {
		return fmt.Sprintf("%s (pid %d) grew %s in the last %v (%s private now)", a.head.Comm, a.head.PID, oom.HumanBytes(a.grew), window, oom.HumanBytes(a.frees))
	}
	return fmt.Sprintf("the family of %s (pid %d), %d processes, grew %s in the last %v (%s private now): ended together as one kill",
		a.head.Comm, a.head.PID, len(a.members), oom.HumanBytes(a.grew), window, oom.HumanBytes(a.frees))
}

// keptSummary names the spared processes, at most five.
func keptSummary(kept []keptProc) string {
	var parts []string
	for i, k := range kept {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("%d more", len(kept)-5))
			break
		}
		parts = append(parts, fmt.Sprintf("%s (pid %d, %s)", k.p.Comm, k.p.PID, k.rule))
	}
	return strings.Join(parts, ", ")
}
