package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"

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
	pids, err := a.planAdj(t, out)
	if err != nil {
		errs = append(errs, err)
	}
	known := make(map[int]bool, len(pids))
	for _, pid := range pids {
		known[pid] = true
	}
	a.known[t.Cgroup] = known
	return len(pids), errs
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
		return a.planFlag(t, t.Cgroup, true, "policy oomGroup: group", out)
	}
	reason := "policy oomGroup: single (kill one process, not the whole container)"
	if t.PodCgroup != "" && t.PodCgroup != t.Cgroup {
		if err := a.planFlag(t, t.PodCgroup, false, reason, out); err != nil {
			return err
		}
	}
	return a.cg.Walk(ctx, t.Cgroup, func(cg string) error {
		return a.planFlag(t, cg, false, reason, out)
	})
}

func (a *Agent) planFlag(t *Target, cg string, want bool, reason string, out *[]Change) error {
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
	*out = append(*out, Change{Kind: KindOOMGroup, Cgroup: cg, Pod: t.podName(), Container: t.containerName(),
		From: boolFlag(on), To: boolFlag(want), Reason: reason})
	return nil
}

// planAdj adds the oom_score_adj writes for every process of target t and
// returns the processes it found.
func (a *Agent) planAdj(t *Target, out *[]Change) ([]int, error) {
	pids, err := a.cg.Procs(t.Cgroup, true)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list processes of %s: %w", t.Cgroup, err)
	}
	if !t.Decision.AdjSet {
		return pids, nil
	}
	for _, pid := range pids {
		a.planPidAdj(t, pid, out)
	}
	return pids, nil
}

func (a *Agent) planPidAdj(t *Target, pid int, out *[]Change) {
	if pid == a.self {
		return
	}
	// Only the adj is read for a process that is already right: the
	// periodic pass reads every target process, and stat doubles its cost.
	// Kernel threads never sit in a container cgroup.
	p, err := a.proc.Read(pid, procfs.FieldOOMScoreAdj)
	if err == nil && p.OOMScoreAdj != t.Decision.Adj {
		p, err = a.proc.Read(pid, procfs.FieldStat|procfs.FieldOOMScoreAdj)
	}
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			a.countError("read_process", err)
		}
		return
	}
	if c, ok := podAdjChange(t, p, t.Cgroup); ok {
		*out = append(*out, c)
	}
}

// podAdjChange is the write that brings process p of target t (in cgroup
// cg) to the policy's adj, if it needs one.
func podAdjChange(t *Target, p procfs.Proc, cg string) (Change, bool) {
	if !t.Decision.AdjSet || p.Kernel || p.OOMScoreAdj == t.Decision.Adj {
		return Change{}, false
	}
	return Change{Kind: KindPodAdj, Cgroup: cg, PID: p.PID, Comm: p.Comm, Pod: t.podName(),
		Container: t.containerName(), From: itoa(p.OOMScoreAdj), To: itoa(t.Decision.Adj), Reason: t.Decision.Reason}, true
}

// planHost lowers the adj of protected host daemons (never raises it: a
// daemon already at -1000 stays there). Processes inside any pod are not
// host processes, whatever their name.
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
	for _, p := range procs {
		if byComm {
			if !comms[p.Comm] {
				continue
			}
			if p, err = a.proc.Read(p.PID, procfs.FieldStat|procfs.FieldOOMScoreAdj|procfs.FieldCgroup); err != nil {
				continue // exited
			}
		}
		a.planHostProc(p, out)
	}
	return nil
}

func (a *Agent) planHostProc(p procfs.Proc, out *[]Change) {
	if p.Kernel || p.PID == a.self {
		return
	}
	cg := a.memCgroup(p)
	if cgroup.ParsePath(cg).InPod() || cgroup.ParsePath(a.ns.Host(p.Cgroup)).InPod() {
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
	*out = append(*out, Change{Kind: KindHostAdj, Cgroup: cg, PID: p.PID, Comm: p.Comm,
		From: itoa(p.OOMScoreAdj), To: itoa(adj), Reason: "protected host process"})
}

// memCgroup is the path of p in the hierarchy the agent reads.
func (a *Agent) memCgroup(p procfs.Proc) string {
	if a.cg.Version() == cgroup.V2 {
		return a.ns.Host(p.Cgroup)
	}
	return a.ns.Host(p.CgroupV1Memory)
}

// apply performs changes in order and records each outcome. A target that
// vanished mid-write (cgroup removed, process exited) is not an error.
func (a *Agent) apply(changes []Change) []Change {
	for i := range changes {
		c := &changes[i]
		key := changeKey(*c)
		c.Drift = a.fixed[key]
		if a.cfg.DryRun {
			continue
		}
		var err error
		switch c.Kind {
		case KindOOMGroup:
			err = a.cg.SetOOMGroup(c.Cgroup, c.To == "1")
		case KindPodAdj, KindHostAdj:
			n, _ := strconv.Atoi(c.To)
			err = a.proc.WriteOOMScoreAdj(c.PID, n)
		}
		switch {
		case errors.Is(err, fs.ErrNotExist):
			c.Err = errGone
		case err != nil:
			c.Err = err
			a.countError("write", err)
		default:
			a.fixed[key] = true
		}
		a.record(*c)
	}
	return changes
}

var errGone = errors.New("gone before the write")

func changeKey(c Change) string {
	if c.Kind == KindOOMGroup {
		return string(c.Kind) + ":" + c.Cgroup
	}
	return fmt.Sprintf("%s:%d", c.Kind, c.PID)
}

func (t *Target) podName() string {
	if t.PodName != "" {
		return t.Namespace + "/" + t.PodName
	}
	return t.PodUID
}

func (t *Target) containerName() string {
	if t.Container != "" {
		return t.Container
	}
	return shortContainer(t.ContainerID)
}
