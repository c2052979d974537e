package preempt

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"podwarden/internal/kubeevent"
	"podwarden/internal/oom"
	"podwarden/internal/policy"
	"podwarden/internal/procfs"
)

// Reasons the engine chose not to act (podwarden_preempt_refusals_total).
// Each is a case where a kill would not give the scope its memory back, or
// would end something that did not cause the shortage.
const (
	// No target's committed memory grew lately: the pressure comes from
	// outside the targets (a host process, a pod that is not a target) or
	// from memory held flat (a pod that loaded its data and keeps it).
	reasonNoGrowth = "no_growth"
	// The container grew, but in shmem or tmpfs (/dev/shm): charged to the
	// cgroup until the files go, whatever process is ended.
	reasonShmem = "shmem"
	// The container grew, but not in any live process's private memory:
	// kernel memory, page cache that cannot be reclaimed, or processes
	// that have already exited.
	reasonNotProcess = "not_process_memory"
	// What the culprit holds privately is less than the scope needs to be
	// out of danger (above minAvailable): the pressure is mostly elsewhere.
	reasonTooSmall = "kill_too_small"
)

// growthBars are the least growth of a domain of total bytes that counts:
// over the growth window (1% of it, at least 16 MiB, at most 512 MiB, so
// a slow hog on a 1 TiB node still counts), and over the recent window
// (a quarter of that, at least 4 MiB: it is still growing).
func growthBars(total uint64) (window, recent uint64) {
	window = max(16<<20, min(total/100, 512<<20))
	return window, max(window/4, 4<<20)
}

// startNode begins a node episode when the node is in danger: the culprit
// is the target whose committed memory grew most lately, and in it what
// grew. No target growing: nothing is done, and the reason is said.
func (e *Engine) startNode(now time.Time) {
	if e.nodeH.level < levelDanger || e.episodes[nodeKey] != nil || e.cooling(nodeKey, now) {
		return
	}
	// Rank on fresh numbers; those step sampled already are.
	for _, st := range e.targets {
		if s, ok := st.h.last(); !ok || !s.at.Equal(now) {
			e.sampleTarget(now, st)
		}
	}
	cands, most := e.rankNode()
	if len(cands) > 0 && e.inEpisode(cands[0].st.t.Cgroup) {
		return // the culprit's own episode is already acting in it
	}
	ep := &episode{key: nodeKey, scope: kubeevent.ScopeNode, start: now, at: e.nodeH}
	if len(e.targets) == 0 {
		e.episodes[nodeKey] = ep
		e.log.Warn("node memory short but no target container to act in: leaving it to the kernel",
			"available_bytes", e.nodeH.avail, "total_bytes", e.nodeH.total)
		e.finish(ep, now, "no_target")
		return
	}
	if len(cands) == 0 {
		why := fmt.Sprintf("no target container's committed memory is growing (%s): the shortage comes from outside the targets (a host process, a pod that is not a target) or from memory held flat; ending a target could not give it back",
			most)
		e.refuse(ep, now, reasonNoGrowth, why)
		return
	}
	e.episodes[nodeKey] = ep
	e.begin(ep, cands[0].st, cands[0].why, now)
}

type candidate struct {
	st  *targetState
	why string
}

// rankNode lists the targets growing now, the one that grew most lately
// first. most describes the largest growth seen, for a refusal.
func (e *Engine) rankNode() (out []candidate, most string) {
	type ranked struct {
		st                   *targetState
		growth, recent, cmtd uint64
	}
	bar, recentBar := growthBars(e.nodeH.total)
	var rs []ranked
	var best *ranked
	for _, st := range e.targets {
		s, ok := st.h.last()
		if st.gone || !ok {
			continue
		}
		r := ranked{st, st.h.growth(e.pol.GrowthWindow), st.h.growth(e.recent()), s.committed}
		if best == nil || r.recent > best.recent {
			best = &r
		}
		if r.growth >= bar && r.recent >= recentBar {
			rs = append(rs, r)
		}
	}
	most = "no target sampled"
	if best != nil {
		most = fmt.Sprintf("the most, container %s, grew %s in the last %v and %s in the last %v, under the %s and %s that count",
			best.st.t.ContainerLabel(), oom.HumanBytes(best.growth), e.pol.GrowthWindow, oom.HumanBytes(best.recent), e.recent(),
			oom.HumanBytes(bar), oom.HumanBytes(recentBar))
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		return cmp.Or(cmp.Compare(b.recent, a.recent), cmp.Compare(b.growth, a.growth), cmp.Compare(a.st.t.Cgroup, b.st.t.Cgroup))
	})
	for _, r := range rs {
		out = append(out, candidate{r.st, fmt.Sprintf("container %s grew %s in the last %v, %s of it in the last %v (%s committed now)",
			r.st.t.ContainerLabel(), oom.HumanBytes(r.growth), e.pol.GrowthWindow, oom.HumanBytes(r.recent), e.recent(), oom.HumanBytes(r.cmtd))})
	}
	return out, most
}

// startContainers begins an episode in every target that is in danger
// against its own memory.max (its committed memory near the limit while
// its own memory.pressure rises), unless an episode already acts in it.
func (e *Engine) startContainers(now time.Time) {
	for cg, st := range e.targets {
		if st.gone {
			continue
		}
		key := containerKey(cg)
		if e.episodes[key] != nil || e.inEpisode(cg) || e.cooling(key, now) {
			continue
		}
		h := judge(&st.h, e.pol.Container, e.spec.Window, e.spec.Full, e.pol.Pressure.Share())
		e.pending = e.pending || h.pending
		if h.level < levelDanger {
			continue
		}
		ep := &episode{key: key, scope: kubeevent.ScopeContainer, start: now, at: h}
		e.episodes[key] = ep
		why := fmt.Sprintf("container %s is at %.0f%% of its memory limit with its own memory pressure", st.t.ContainerLabel(), 100-h.pct)
		e.begin(ep, st, why, now)
	}
}

// begin finds the culprit in st and sends the first step (or, in a dry
// run, only reports it), unless a kill could not help.
func (e *Engine) begin(ep *episode, st *targetState, why string, now time.Time) {
	ep.cg, ep.target, ep.why = st.t.Cgroup, st.t, why
	mode := st.t.Preempt.Mode
	if mode == policy.PreemptOff {
		e.log.Warn("culprit opted out (podwarden.dev/preempt: off): leaving it to the kernel", "target", st.t.Name(), "why", why)
		e.finish(ep, now, "opted_out")
		return
	}
	keep := st.t.Preempt.Keep
	if keep == nil {
		keep = e.pol.Keep
	}
	for try := 0; try < 3; try++ {
		procs := e.procs(st.t.Cgroup, &st.procs, now)
		a := attribute(procs, &st.procs, now, e.recent(), st.t.InitPID, keep, e.pol.KeepInit)
		ep.root = rootRef(procs, a)
		if !a.known {
			// No earlier snapshot of its processes: the next step has one.
			delete(e.episodes, ep.key)
			return
		}
		// The processes' private memory must be what grew: a pod filling
		// /dev/shm grows its cgroup, not its processes (a writer's heap
		// may grow a little meanwhile, and ending it would free that).
		if cg := st.h.growthSince(st.procs.base(now, e.recent())); a.head == nil || 2*a.total < cg {
			reason, detail := e.notProcessGrowth(st)
			if a.head != nil && reason == reasonNoGrowth {
				reason = reasonNotProcess
			}
			e.refuse(ep, now, reason, why+"; "+detail+fmt.Sprintf("; its processes' private memory grew %s of it", oom.HumanBytes(a.total)))
			return
		}
		ep.victim, ep.members, ep.frees = *a.head, a.members, a.frees
		ep.why = why + "; " + a.summary(e.recent()) + e.named(a, keep)
		if s := keptSummary(a.kept); s != "" {
			ep.why += "; spared: " + s
		}
		if need := ep.at.need(); a.frees < need {
			e.refuse(ep, now, reasonTooSmall, ep.why+fmt.Sprintf("; ending it would give back %s of the %s the %s needs to be out of danger (above minAvailable, and not falling to criticalAvailable within two pressure windows)",
				oom.HumanBytes(a.frees), oom.HumanBytes(need), ep.scope))
			return
		}
		if e.pol.DryRun || mode == policy.PreemptDryRun {
			ep.sent = []string{e.pol.Ladder[0].Signal}
			e.tell(ep, kubeevent.OutcomeDryRun)
			e.lastKill[ep.key] = now // one report per cooldown, as one kill
			e.m.Kills.WithLabelValues(st.t.Namespace, st.t.PodLabel(), st.t.ContainerLabel(), ep.scope.String(), kubeevent.OutcomeDryRun.String()).Inc()
			e.finish(ep, now, kubeevent.OutcomeDryRun.String())
			return
		}
		h, err := e.open(st.t.Cgroup, a.members)
		if errors.Is(err, fs.ErrNotExist) {
			continue // the head exited between the scan and the open: look again
		}
		if err != nil {
			e.log.Error("cannot open the victim", "pid", ep.victim.PID, "err", err)
			e.finish(ep, now, "error")
			return
		}
		ep.h = h
		if a.family {
			e.endFamily(ep, now)
			return
		}
		e.send(ep, e.startStep(ep.victim, now), now)
		return
	}
	e.finish(ep, now, "recovered") // every choice vanished: memory is being freed anyway
}

// named says, when the culprit's name matches a keep pattern or it is the
// container's init, that this did not save it: the user sees why their
// server went.
func (e *Engine) named(a attribution, keep []string) string {
	var notes []string
	for _, m := range a.members {
		if rule := keepRule(m, keep); rule != "" {
			notes = append(notes, fmt.Sprintf("%s (pid %d) matches %s, but names never outweigh growth: if it is the session's server, the session is lost with it", m.Comm, m.PID, rule))
		}
		if m.PID == a.init {
			notes = append(notes, fmt.Sprintf("%s (pid %d) is the container's init: the session is lost with it", m.Comm, m.PID))
		}
	}
	if len(notes) > 3 {
		notes = append(notes[:3], fmt.Sprintf("%d more", len(notes)-3))
	}
	if len(notes) == 0 {
		return ""
	}
	return "; " + strings.Join(notes, "; ")
}

// notProcessGrowth says why a container in danger has no culprit process.
func (e *Engine) notProcessGrowth(st *targetState) (reason, detail string) {
	recent := e.recent()
	cur, _ := st.h.last()
	total := cur.total
	if total == 0 {
		total = e.nodeH.total
	}
	_, recentBar := growthBars(total)
	grew := st.h.growth(recent)
	sh, shLo, _ := st.h.span(recent, func(s sample) uint64 { return s.shmem })
	shGrew := sh - shLo
	switch {
	case grew < recentBar:
		return reasonNoGrowth, fmt.Sprintf("its committed memory grew %s in the last %v: it is held, not growing, and no process of it grew", oom.HumanBytes(grew), recent)
	case 2*shGrew >= grew:
		return reasonShmem, fmt.Sprintf("it grew %s in the last %v, %s of it shmem or tmpfs (/dev/shm), which stays charged whatever process ends", oom.HumanBytes(grew), recent, oom.HumanBytes(shGrew))
	}
	return reasonNotProcess, fmt.Sprintf("it grew %s in the last %v, none of it in a live process's private memory (kernel memory, page cache that cannot be reclaimed, or processes gone already)", oom.HumanBytes(grew), recent)
}

// refuse ends ep without acting, because no kill could help: said in the
// log, the metric (once per cooldown and reason), the culprit's pod's
// Event and, at node scope, the Node's Event (tellRefusal).
// The scope is looked at again after fullEvery: a culprit may appear.
func (e *Engine) refuse(ep *episode, now time.Time, reason, why string) {
	delete(e.episodes, ep.key)
	e.retryAt[ep.key] = now.Add(fullEvery)
	told := ep.key + "/" + reason
	if last, ok := e.refusedAt[told]; ok && now.Sub(last) < e.pol.Cooldown {
		return
	}
	e.refusedAt[told] = now
	// The metric's reason leads, so the log line and the Event name it.
	ep.why = reason + ": " + why
	e.m.Refusals.WithLabelValues(ep.scope.String(), reason).Inc()
	e.m.Episodes.WithLabelValues(ep.scope.String(), "refused").Inc()
	e.tellRefusal(ep, reason)
}

// open takes a handle on every member, head first. The head gone means
// the choice is stale (fs.ErrNotExist); a child gone is one less to end.
// Every pid, once held, must still be in the container: never a process
// outside the target.
func (e *Engine) open(cg string, members []procfs.Proc) (Handle, error) {
	fh := &familyHandle{}
	for i, m := range members {
		h, err := e.sig.Open(m)
		if err != nil {
			if i == 0 {
				fh.Close()
				return nil, err
			}
			continue
		}
		fh.hs = append(fh.hs, h)
		fh.pids = append(fh.pids, m.PID)
	}
	pids, err := e.cfg.Cgroups.Procs(cg, true)
	if err != nil || !slices.Contains(pids, members[0].PID) {
		fh.Close()
		return nil, fmt.Errorf("pid %d is no longer in %s: %w", members[0].PID, cg, fs.ErrNotExist)
	}
	for i := len(fh.hs) - 1; i > 0; i-- {
		if !slices.Contains(pids, fh.pids[i]) {
			fh.hs[i].Close()
			fh.hs = slices.Delete(fh.hs, i, i+1)
			fh.pids = slices.Delete(fh.pids, i, i+1)
		}
	}
	if len(fh.hs) == 1 {
		return fh.hs[0], nil
	}
	return fh, nil
}

// familyHandle holds every member of a family: each signal goes to all,
// the parent first, and the family has exited when all have.
type familyHandle struct {
	hs   []Handle
	pids []int
}

func (f *familyHandle) Signal(sig unix.Signal) error {
	var errs []error
	live := 0
	for _, h := range f.hs {
		switch err := h.Signal(sig); {
		case errors.Is(err, errExited):
		case err != nil:
			errs = append(errs, err)
			live++
		default:
			live++
		}
	}
	if live == 0 {
		return errExited
	}
	return errors.Join(errs...)
}

func (f *familyHandle) Exited() bool {
	for _, h := range f.hs {
		if !h.Exited() {
			return false
		}
	}
	return true
}

// Fd is the first member still running: polling an exited one would wake
// the loop at once, every time.
func (f *familyHandle) Fd() int {
	for _, h := range f.hs {
		if !h.Exited() {
			return h.Fd()
		}
	}
	return -1
}

func (f *familyHandle) Mrelease() error {
	var errs []error
	for _, h := range f.hs {
		errs = append(errs, h.Mrelease())
	}
	return errors.Join(errs...)
}

func (f *familyHandle) Close() error {
	var errs []error
	for _, h := range f.hs {
		errs = append(errs, h.Close())
	}
	f.hs = nil
	return errors.Join(errs...)
}

// procs reads every process of cg and below, with command lines (for the
// keep patterns) as far as they come within cmdlineWait. Only processes ph
// has known for a recent window get theirs read: a newer one's name is no
// evidence (attribute never spares it by name), and in a fork storm each
// read is a thread blocked on a hog's mmap_lock, made while memory is
// scarcest.
func (e *Engine) procs(cg string, ph *procHist, now time.Time) []procfs.Proc {
	out := e.readProcs(cg, victimFields)
	pids := make([]int, 0, len(out))
	for _, p := range out {
		if pm := ph.procs[p.PID]; pm != nil && pm.start == p.StartTime && now.Sub(pm.first) >= e.recent() {
			pids = append(pids, p.PID)
		}
	}
	cmds := cmdlinesWithin(e.cfg.Proc, pids, cmdlineWait)
	for i := range out {
		out[i].Cmdline = cmds[out[i].PID]
	}
	return out
}

// readProcs reads fields of every process of cg and below; processes that
// exit meanwhile are left out.
func (e *Engine) readProcs(cg string, fields procfs.Field) []procfs.Proc {
	pids, err := e.cfg.Cgroups.Procs(cg, true)
	if err != nil {
		return nil
	}
	out := make([]procfs.Proc, 0, len(pids))
	for _, pid := range pids {
		if p, err := e.cfg.Proc.Read(pid, fields); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// rootProc picks a process that lives on in the container, for the
// message file: its init unless it is ended too, else any other.
func rootProc(procs []procfs.Proc, a attribution) int {
	ended := map[int]bool{}
	for _, m := range a.members {
		ended[m.PID] = true
	}
	if a.init > 0 && !ended[a.init] {
		return a.init
	}
	for _, p := range procs {
		if !ended[p.PID] && p.State != 'Z' && !p.Kernel {
			return p.PID
		}
	}
	return 0
}
