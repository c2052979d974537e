package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"

	"podwarden/internal/cgroup"
	"podwarden/internal/policy"
	"podwarden/internal/procfs"
)

// planTarget plans everything target t needs (flags and every process's
// adj) and remembers its processes, so the fast path only reads new ones.
// It returns how many processes the target has.
func (a *Agent) planTarget(ctx context.Context, t *Target, out *[]Change) (int, []error) {
	var errs []error
	if err := a.planGroup(ctx, t, out); err != nil {
		errs = append(errs, err)
	}
	pids, err := a.cg.Procs(t.Cgroup, true)
	if errors.Is(err, fs.ErrNotExist) {
		pids, err = nil, nil
	}
	if err != nil {
		return 0, append(errs, fmt.Errorf("list processes of %s: %w", t.Cgroup, err))
	}
	old := t.st.procs
	t.st.procs = make(map[int]procState, len(pids))
	for _, pid := range pids {
		if s, ok := a.planPidAdj(t, pid, old[pid], out); ok {
			a.knowProc(t, pid, s)
		}
	}
	for pid := range old {
		if _, ok := t.st.procs[pid]; !ok && a.byPID[pid] == t {
			delete(a.byPID, pid)
		}
	}
	return len(pids), errs
}

// knowProc records that process pid of target t has been checked.
func (a *Agent) knowProc(t *Target, pid int, s procState) {
	t.st.procs[pid] = s
	a.byPID[pid] = t
}

// forgetProc drops an exited process from the state of its target.
func (a *Agent) forgetProc(pid int) {
	if t := a.byPID[pid]; t != nil {
		delete(t.st.procs, pid)
		delete(a.byPID, pid)
	}
	delete(a.hostFixed, pid)
}

// planGroup adds the memory.oom.group writes target t needs. "single"
// clears the flag on the container cgroup, every cgroup below it (a systemd
// inside the container may set it on its own scopes) and the pod cgroup
// (the kernel kills the HIGHEST flagged ancestor, so one flag left above
// would undo the rest); "group" sets it on the container cgroup; "leave"
// writes nothing. cgroup v1 has no oom.group at all.
func (a *Agent) planGroup(ctx context.Context, t *Target, out *[]Change) error {
	if a.cg.Version() != cgroup.V2 {
		return nil
	}
	switch t.Decision.OOMGroup {
	case policy.ModeLeave:
		return nil
	case policy.ModeGroup:
		return a.planFlag(t, t.Cgroup, out)
	}
	if t.PodCgroup != "" && t.PodCgroup != t.Cgroup {
		if err := a.planFlag(t, t.PodCgroup, out); err != nil {
			return err
		}
	}
	return a.cg.Walk(ctx, t.Cgroup, func(cg string) error {
		return a.planFlag(t, cg, out)
	})
}

// planFlag adds the write of cgroup cg's oom.group, if it needs one, for
// target t's mode.
func (a *Agent) planFlag(t *Target, cg string, out *[]Change) error {
	if a.cg.Version() != cgroup.V2 || t.Decision.OOMGroup == policy.ModeLeave {
		return nil
	}
	want := t.Decision.OOMGroup == policy.ModeGroup
	reason := "policy oomGroup: single (kill one process, not the whole container)"
	if want {
		reason = "policy oomGroup: group"
	}
	on, err := a.cg.OOMGroup(cg)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // removed since we listed it
	}
	if err != nil {
		return fmt.Errorf("read oom.group of %s: %w", cg, err)
	}
	if on == want {
		return nil
	}
	*out = append(*out, Change{Kind: KindOOMGroup, Cgroup: cg, Pod: t.PodRef(), Container: t.ContainerLabel(),
		From: boolFlag(on), To: boolFlag(want), Reason: reason, Drift: t.st.groups[cg]})
	return nil
}

// planPidAdj plans the adj write for process pid, listed in target t's
// cgroup.procs, whose last known state is was. ok is false when the
// process is gone or is not t's any more.
func (a *Agent) planPidAdj(t *Target, pid int, was procState, out *[]Change) (procState, bool) {
	if pid == a.self {
		return procState{}, false
	}
	// Only the adj is read for a process that is already right: the
	// periodic pass reads every target process, and stat doubles its cost.
	// Kernel threads never sit in a container cgroup.
	p, err := a.proc.Read(pid, procfs.FieldOOMScoreAdj)
	if err == nil && (!t.Decision.AdjSet || p.OOMScoreAdj == t.Decision.Adj) {
		return procState{start: was.start, fixed: was.fixed}, true
	}
	if err == nil {
		// The pid was listed in the target a moment ago; reading stat and
		// cgroup through one directory proves it still is, and the start
		// time binds the write to this very process.
		p, err = a.proc.Read(pid, procfs.FieldStat|procfs.FieldOOMScoreAdj|procfs.FieldCgroup)
	}
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			a.countError("read_process", err)
		}
		return procState{}, false
	}
	cg := a.memCgroup(p)
	if !cgroup.Within(cg, t.Cgroup) {
		return procState{}, false // recycled into another cgroup since the listing
	}
	s := procState{start: p.StartTime, fixed: was.fixed && was.start == p.StartTime}
	if c, ok := podAdjChange(t, p, cg); ok {
		c.Drift = s.fixed
		*out = append(*out, c)
	}
	return s, true
}

// podAdjChange is the write that brings process p of target t (in cgroup
// cg) to the policy's adj, if it needs one. p must have FieldStat.
func podAdjChange(t *Target, p procfs.Proc, cg string) (Change, bool) {
	if !t.Decision.AdjSet || p.Kernel || p.OOMScoreAdj == t.Decision.Adj {
		return Change{}, false
	}
	return Change{Kind: KindPodAdj, Cgroup: cg, PID: p.PID, StartTime: p.StartTime, Comm: p.Comm, Pod: t.PodRef(),
		Container: t.ContainerLabel(), From: p.OOMScoreAdj, To: t.Decision.Adj, Reason: t.Decision.Reason}, true
}

// planHost lowers the adj of protected host daemons (never raises it: a
// daemon already at -1000 stays there). Processes inside any target or
// container are not host processes, whatever their name.
func (a *Agent) planHost(ctx context.Context, out *[]Change) error {
	if len(a.cfg.Policy.Protected) == 0 {
		return nil
	}
	// Most policies name daemons by comm: then only stat is read for every
	// process, and the rest only for the few whose name matches.
	comms, byComm := a.cfg.Policy.HostComms()
	fields := procfs.FieldStat | procfs.FieldOOMScoreAdj | procfs.FieldCgroup
	if byComm {
		fields = procfs.FieldStat
	}
	procs, err := a.proc.Scan(ctx, fields)
	if err != nil {
		return fmt.Errorf("scan processes: %w", err)
	}
	seen := make(map[int]uint64, len(a.hostFixed))
	for _, p := range procs {
		if byComm {
			if !comms[p.Comm] {
				continue
			}
			if p, err = a.proc.Read(p.PID, procfs.FieldStat|procfs.FieldOOMScoreAdj|procfs.FieldCgroup); err != nil {
				continue // exited
			}
		}
		if start, ok := a.hostFixed[p.PID]; ok && start == p.StartTime {
			seen[p.PID] = start
		}
		a.planHostProc(p, out)
	}
	// Forget host processes that exited without an exit event reaching
	// the agent.
	a.hostFixed = seen
	return nil
}

// planHostProc plans lowering host process p (read with stat, adj and
// cgroup) if a protected rule names it. A process in a target, a pod or
// any container is never a host process: a hog named sshd must not be
// lowered below its pod's adj, nor a daemon inside a non-pod container
// (docker run, podman) treated as the host's.
func (a *Agent) planHostProc(p procfs.Proc, out *[]Change) {
	if p.Kernel || p.PID == a.self {
		return
	}
	cg := a.memCgroup(p)
	if a.targetOf(cg) != nil || cgroup.InContainer(cg) || cgroup.InContainer(a.ns.Host(p.Cgroup)) ||
		(a.cfg.Policy.CgroupSelector != "" && a.selectedBelow(cg)) {
		return
	}
	exe := ""
	if slices.ContainsFunc(a.cfg.Policy.Protected, func(r policy.ProtectedRule) bool { return r.Exe != "" }) {
		exe, _ = os.Readlink(a.proc.Path(p.PID, "exe"))
	}
	adj, ok := a.cfg.Policy.ProtectHost(p.Comm, exe, cg)
	if !ok || p.OOMScoreAdj <= adj {
		return
	}
	start, fixed := a.hostFixed[p.PID]
	*out = append(*out, Change{Kind: KindHostAdj, Cgroup: cg, PID: p.PID, StartTime: p.StartTime, Comm: p.Comm,
		From: p.OOMScoreAdj, To: adj, Reason: "protected host process", Drift: fixed && start == p.StartTime})
}

// selectedBelow reports whether cg or one of its ancestors matches the
// runtime-less cgroup selector: such a cgroup is a target container (or
// inside one) even before discovery has seen it.
func (a *Agent) selectedBelow(cg string) bool {
	for c := cg; c != "" && c != "/"; c = cgroup.Parent(c) {
		if policy.MatchGlob(a.cfg.Policy.CgroupSelector, c) {
			return true
		}
	}
	return false
}

// memCgroup is the path of p in the hierarchy the agent reads.
func (a *Agent) memCgroup(p procfs.Proc) string {
	if a.cg.Version() == cgroup.V2 {
		return a.ns.Host(p.Cgroup)
	}
	return a.ns.Host(p.CgroupV1Memory)
}
