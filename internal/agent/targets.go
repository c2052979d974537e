package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	"podwarden/internal/cgroup"
	"podwarden/internal/cri"
	"podwarden/internal/policy"
	"podwarden/internal/target"
)

// Target is one container the policy protects: its identity (target.Ref,
// shared with early action) and what the policy decided for it.
type Target struct {
	target.Ref
	Decision policy.Decision `json:"decision"`

	// st is what the agent remembers about the target; it goes when the
	// target goes.
	st *targetState
}

// targetState is the agent's memory of one target. Nothing about a target
// is kept anywhere else, so memory follows the live targets and their live
// processes, whatever the churn.
type targetState struct {
	// procs are the processes already checked (pid -> start time and
	// whether the agent wrote its adj), so the fast path reads only new
	// ones and a repeat write counts as drift only for the same process.
	procs map[int]procState
	// groups are the cgroups whose oom.group the agent wrote.
	groups map[string]bool
	// oomKills is the last oom_kill counter read from memory.events.
	oomKills uint64
	oomRead  bool
	// Rechecks (schedule.go): due is when the target is next protected
	// (zero: not scheduled), step the next of recheckAfter from base, last
	// the end of its last protect.
	due, base, last time.Time
	step            int
}

type procState struct {
	start uint64
	fixed bool
}

func newTargetState() *targetState {
	return &targetState{procs: map[int]procState{}, groups: map[string]bool{}}
}

// podInfo is what the runtime says about a targeted pod.
type podInfo struct {
	pod        cri.Pod
	decision   policy.Decision
	containers map[string]string // container id -> name
}

// discover returns the current targets, keyed by container cgroup path.
// With a runtime, pods are chosen by the policy's selector and annotations
// (from the runtime's last answer, a.pods) and their containers found in
// the cgroup tree by id (reading the tree beats rebuilding paths for every
// driver); without one, the policy's cgroup glob chooses container cgroups
// directly. A target that turns out to hold pod cgroups (a glob matching
// a kind node's container, or any parent the load-time check could not
// foresee) is dropped: as a target it would swallow the containers below
// it, each with its own pod, and they are taken one by one instead.
func (a *Agent) discover(ctx context.Context) (map[string]*Target, error) {
	targets := make(map[string]*Target)
	if a.rt != nil && a.pods == nil {
		return targets, nil // no answer from the runtime yet
	}
	var open []*Target // targets enclosing the cgroup being visited: Walk is pre-order
	podParents := map[string]bool{}
	err := a.cg.Walk(ctx, "/", func(cg string) error {
		for len(open) > 0 && !strings.HasPrefix(cg, open[len(open)-1].Cgroup+"/") {
			open = open[:len(open)-1]
		}
		if len(open) > 0 {
			if o := cgroup.ParsePath(cg); o.InPod() {
				for _, t := range open {
					podParents[t.Cgroup] = podParents[t.Cgroup] || podBelow(t.Cgroup, o)
				}
			}
		}
		t := a.match(cg)
		if t != nil {
			targets[cg] = t
			open = append(open, t)
		} else if a.explain && a.rt == nil && len(open) == 0 {
			a.explainCgroup(cg)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk cgroup tree: %w", err)
	}
	for cg := range podParents {
		if podParents[cg] {
			a.log.Debug("not a target: holds pod cgroups", "cgroup", cg)
			delete(targets, cg)
		}
	}
	// Everything below a target belongs to it: the outermost wins.
	for cg := range targets {
		for p := cgroup.Parent(cg); p != "/"; p = cgroup.Parent(p) {
			if _, ok := targets[p]; ok {
				delete(targets, cg)
				break
			}
		}
	}
	return targets, nil
}

// podBelow reports whether the pod that cgroup path's owner o names lies
// strictly below target cgroup cg: cg is then a parent of pods, not a
// container. A target inside a pod (its container, or the outer pod of a
// nested kubelet) has o's pod cgroup above or at it.
func podBelow(cg string, o cgroup.Owner) bool {
	return len(o.PodCgroup) > len(cg) && strings.HasPrefix(o.PodCgroup, cg+"/")
}

// setTargets replaces the targets with a fresh discovery, keeping the state
// of those that remain.
func (a *Agent) setTargets(targets map[string]*Target) {
	var kept []*Target
	for cg, old := range a.targets {
		if t, ok := targets[cg]; ok && t.ContainerID == old.ContainerID {
			t.st = old.st
			kept = append(kept, old)
			continue
		}
		a.dropTarget(cg)
	}
	for cg, t := range targets {
		if t.st == nil {
			t.st = newTargetState()
		}
		a.targets[cg] = t
		a.export(t, +1)
	}
	// After the new ones are counted, so a series that stays never blinks.
	for _, old := range kept {
		a.export(old, -1)
	}
	a.m.ProtectedContainers.Set(float64(len(a.targets)))
	a.publishTargets()
}

// addTarget starts protecting t.
func (a *Agent) addTarget(t *Target) {
	t.st = newTargetState()
	a.targets[t.Cgroup] = t
	delete(a.pending, t.Cgroup)
	a.export(t, +1)
	a.m.ProtectedContainers.Set(float64(len(a.targets)))
	a.publishTargets()
}

// dropTarget forgets the target at cg and everything about it.
func (a *Agent) dropTarget(cg string) {
	t, ok := a.targets[cg]
	if !ok {
		return
	}
	for pid := range t.st.procs {
		if a.byPID[pid] == t {
			delete(a.byPID, pid)
		}
	}
	delete(a.targets, cg)
	a.export(t, -1)
	a.m.ProtectedContainers.Set(float64(len(a.targets)))
	a.publishTargets()
}

// export counts target t in (+1) or out (-1) of
// podwarden_protected_container_info. Two targets can share a series (a
// restarted container is a new target under the same names before the
// old cgroup is reported gone), so the series goes with the last of them.
func (a *Agent) export(t *Target, d int) {
	l := t.Labels()
	n := a.exported[l] + d
	switch {
	case n <= 0:
		delete(a.exported, l)
		a.m.ProtectedInfo.DeleteLabelValues(l[:]...)
	case d > 0 && n == 1:
		a.exported[l] = n
		a.m.ProtectedInfo.WithLabelValues(l[:]...).Set(1)
	default:
		a.exported[l] = n
	}
}

// match returns the target at container cgroup cg, or nil. Whatever the
// selector or the runtime says, a cgroup policy.NeverTarget names (the
// root, a host slice, the kubelet's kubepods, QoS and pod levels) is
// never one: the load-time check on the selector cannot see every path a
// node has.
func (a *Agent) match(cg string) *Target {
	t := a.matchSelected(cg)
	if t == nil || policy.NeverTarget(cg) != "" {
		return nil
	}
	return t
}

func (a *Agent) matchSelected(cg string) *Target {
	o := cgroup.ParsePath(cg)
	if a.selfPod != "" && o.PodUID == a.selfPod {
		return nil // the agent's own pod
	}
	if sel := a.cfg.Policy.CgroupSelector; sel != "" && !policy.MatchGlob(sel, cg) {
		return nil
	}
	if a.rt == nil {
		return a.matchRuntimeless(cg, o)
	}
	id, ok := containerID(cg, o)
	if !ok {
		return nil
	}
	p, ok := a.pods[id]
	if !ok {
		return nil
	}
	return &Target{Ref: target.Ref{
		Cgroup: cg, PodCgroup: o.PodCgroup, PodUID: p.pod.UID, Namespace: p.pod.Namespace, PodName: p.pod.Name,
		ContainerID: id, Container: p.containers[id],
	}, Decision: p.decision}
}

// matchRuntimeless is match without a runtime: every container cgroup the
// kubelet made (any driver, QoS level or runtime, as cgroup.ParsePath
// reads them) is a target, narrowed by the cgroupSelector glob when there
// is one. Inside a pod only the container cgroups themselves are: not the
// pod cgroup, CRI-O's conmon scope or a runtime's sub-cgroup, even where
// a glob matches them. Outside pods a glob alone chooses (a systemd
// service, a plain Docker container).
func (a *Agent) matchRuntimeless(cg string, o cgroup.Owner) *Target {
	why := runtimelessWhy(cg, o, a.cfg.Policy.CgroupSelector)
	if why == "" {
		return nil
	}
	d := a.cfg.Policy.Decide(policy.Target{PodUID: o.PodUID})
	if d.Target {
		d.Reason = why + strings.TrimPrefix(d.Reason, "selected")
	}
	t := &Target{Ref: target.Ref{Cgroup: cg, PodCgroup: o.PodCgroup, PodUID: o.PodUID, ContainerID: o.ContainerID}, Decision: d}
	if p, ok := a.podNames.lookup(o.PodUID); ok {
		t.Namespace, t.PodName = p.Namespace, p.Name
	}
	return t
}

// runtimelessWhy says why cgroup cg (parsed as o) is a target without a
// runtime, "" when it is not one.
func runtimelessWhy(cg string, o cgroup.Owner, selector string) string {
	kubelet := o.InPod() && !o.Conmon && (o.ContainerCgroup == cg ||
		// A pod's child not named for a container id: a container only
		// when a glob says so.
		(o.ContainerCgroup == "" && selector != "" && cgroup.Parent(cg) == o.PodCgroup))
	switch {
	case kubelet && selector == "":
		return "kubelet container cgroup"
	case kubelet:
		return "kubelet container cgroup, matches cgroupSelector"
	case o.InPod() || selector == "" || inKubepods(cg):
		return ""
	}
	return "matches cgroupSelector"
}

// inKubepods reports whether cg is in the kubelet's own hierarchy (its
// kubepods root and QoS levels): never a container, whatever a glob says.
func inKubepods(cg string) bool {
	for seg := range strings.SplitSeq(cg, "/") {
		if seg == "kubepods" || (strings.HasSuffix(seg, ".slice") && (strings.HasPrefix(seg, "kubepods") || strings.Contains(seg, "-kubepods"))) {
			return true
		}
	}
	return false
}

// containerID is the runtime id a container cgroup at cg is named for;
// ok is false when cg is not a container cgroup of a pod.
func containerID(cg string, o cgroup.Owner) (string, bool) {
	id := o.ContainerID
	if id == "" && o.PodUID != "" && cgroup.Parent(cg) == o.PodCgroup {
		// A container directory whose name is not a 64-hex id: ask the
		// runtime's list rather than the path's shape.
		id = cgroup.UnitID(cgroup.Base(cg))
		o.ContainerCgroup = cg
	}
	if id == "" || o.Conmon || cg != o.ContainerCgroup {
		return "", false
	}
	return id, true
}

// runtimePods lists the pods the policy targets and their containers. Pod
// sandboxes (pause) are not containers in CRI, so they are never targets:
// killing the sandbox would restart the whole pod. Neither are the pods of
// the agent's own namespace.
func (a *Agent) runtimePods(ctx context.Context) (map[string]*podInfo, error) {
	pods, err := a.rt.ListPods(ctx, a.cfg.Policy.Selector.Labels)
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	out := make(map[string]*podInfo)
	var want []*podInfo
	// Why each pod that is not a target is not, for --once output.
	var rejected map[string]string
	if a.explain {
		rejected = map[string]string{}
	}
	for _, p := range pods {
		if (a.cfg.OwnNamespace != "" && p.Namespace == a.cfg.OwnNamespace) || (a.selfPod != "" && p.UID == a.selfPod) {
			if rejected != nil {
				rejected[p.ID] = "the agent's own namespace or pod"
			}
			continue
		}
		d := a.cfg.Policy.Decide(policy.Target{PodUID: p.UID, Namespace: p.Namespace, Name: p.Name, Labels: p.Labels, Annotations: p.Annotations})
		if d.Target {
			want = append(want, &podInfo{pod: p, decision: d, containers: map[string]string{}})
		} else if rejected != nil {
			rejected[p.ID] = d.Reason
		}
	}
	if len(want) == 0 && len(rejected) == 0 {
		return out, nil
	}
	// One call for every container, not one per pod: a node with 100
	// target pods would otherwise make 101 calls per answer.
	cs, err := a.rt.ListContainers(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	bySandbox := make(map[string]*podInfo, len(want))
	for _, p := range want {
		bySandbox[p.pod.ID] = p
	}
	byID := make(map[string]cri.Pod, len(pods))
	for _, p := range pods {
		byID[p.ID] = p
	}
	for _, c := range cs {
		if why, ok := rejected[c.PodID]; ok && c.State != cri.StateExited {
			p := byID[c.PodID]
			a.candidates = append(a.candidates, Candidate{Namespace: p.Namespace, Pod: p.Name, PodUID: p.UID,
				Container: c.Name, ContainerID: c.ID, Reason: why})
		}
		info := bySandbox[c.PodID]
		if info == nil || c.State == cri.StateExited {
			continue
		}
		info.containers[c.ID] = c.Name
		out[c.ID] = info
	}
	return out, nil
}

// targetOf returns the target containing cgroup path cg, if any.
func (a *Agent) targetOf(cg string) *Target {
	for c := cg; c != "" && c != "/"; c = cgroup.Parent(c) {
		if t, ok := a.targets[c]; ok {
			return t
		}
	}
	return nil
}
