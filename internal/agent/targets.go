package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	"podwarden/internal/cgroup"
	"podwarden/internal/cri"
	"podwarden/internal/policy"
)

// Target is one container the policy protects.
type Target struct {
	// Cgroup is the container's memory cgroup path; everything below it
	// belongs to the container.
	Cgroup    string
	PodCgroup string
	PodUID    string
	Namespace string
	PodName   string
	// ContainerID is the runtime's id; Container its name when the runtime
	// told us.
	ContainerID string
	Container   string
	Decision    policy.Decision

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
// directly.
func (a *Agent) discover(ctx context.Context) (map[string]*Target, error) {
	targets := make(map[string]*Target)
	if a.rt != nil && a.pods == nil {
		return targets, nil // no answer from the runtime yet
	}
	var inside string // the last target found: Walk is pre-order
	err := a.cg.Walk(ctx, "/", func(cg string) error {
		if inside != "" && strings.HasPrefix(cg, inside+"/") {
			return nil
		}
		t := a.match(cg)
		if t != nil {
			targets[cg] = t
			inside = cg
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk cgroup tree: %w", err)
	}
	return targets, nil
}

// setTargets replaces the targets with a fresh discovery, keeping the state
// of those that remain.
func (a *Agent) setTargets(targets map[string]*Target) {
	for cg, old := range a.targets {
		if t, ok := targets[cg]; ok && t.ContainerID == old.ContainerID {
			t.st = old.st
			continue
		}
		a.dropTarget(cg)
	}
	for cg, t := range targets {
		if t.st == nil {
			t.st = newTargetState()
		}
		a.targets[cg] = t
	}
	a.m.ProtectedContainers.Set(float64(len(a.targets)))
}

// addTarget starts protecting t.
func (a *Agent) addTarget(t *Target) {
	t.st = newTargetState()
	a.targets[t.Cgroup] = t
	delete(a.pending, t.Cgroup)
	a.m.ProtectedContainers.Set(float64(len(a.targets)))
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
	a.m.ProtectedContainers.Set(float64(len(a.targets)))
}

// match returns the target at container cgroup cg, or nil.
func (a *Agent) match(cg string) *Target {
	o := cgroup.ParsePath(cg)
	if a.selfPod != "" && o.PodUID == a.selfPod {
		return nil // the agent's own pod
	}
	if a.rt == nil {
		if a.cfg.Policy.CgroupSelector == "" || !policy.MatchGlob(a.cfg.Policy.CgroupSelector, cg) {
			return nil
		}
		if o.Conmon {
			return nil
		}
		return &Target{
			Cgroup: cg, PodCgroup: o.PodCgroup, PodUID: o.PodUID, ContainerID: o.ContainerID,
			Decision: a.cfg.Policy.Decide(policy.Target{PodUID: o.PodUID}),
		}
	}
	id, ok := containerID(cg, o)
	if !ok {
		return nil
	}
	p, ok := a.pods[id]
	if !ok {
		return nil
	}
	return &Target{
		Cgroup: cg, PodCgroup: o.PodCgroup, PodUID: p.pod.UID, Namespace: p.pod.Namespace, PodName: p.pod.Name,
		ContainerID: id, Container: p.containers[id], Decision: p.decision,
	}
}

// containerID is the runtime id a container cgroup at cg is named for;
// ok is false when cg is not a container cgroup of a pod.
func containerID(cg string, o cgroup.Owner) (string, bool) {
	id := o.ContainerID
	if id == "" && o.PodUID != "" && parentCgroup(cg) == o.PodCgroup {
		// A container directory whose name is not a 64-hex id: ask the
		// runtime's list rather than the path's shape.
		id = runtimeUnitID(cg[strings.LastIndexByte(cg, '/')+1:])
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
	for _, p := range pods {
		if (a.cfg.OwnNamespace != "" && p.Namespace == a.cfg.OwnNamespace) || (a.selfPod != "" && p.UID == a.selfPod) {
			continue
		}
		d := a.cfg.Policy.Decide(policy.Target{PodUID: p.UID, Namespace: p.Namespace, Name: p.Name, Labels: p.Labels, Annotations: p.Annotations})
		if d.Target {
			want = append(want, &podInfo{pod: p, decision: d, containers: map[string]string{}})
		}
	}
	if len(want) == 0 {
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
	for _, c := range cs {
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
	for c := cg; c != "" && c != "/"; c = parentCgroup(c) {
		if t, ok := a.targets[c]; ok {
			return t
		}
	}
	return nil
}

func parentCgroup(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

// runtimeUnitID strips the runtime's prefix and systemd suffix from a
// container cgroup's name.
func runtimeUnitID(name string) string {
	name = strings.TrimSuffix(name, ".scope")
	for _, p := range []string{"cri-containerd-", "crio-", "docker-"} {
		if id, ok := strings.CutPrefix(name, p); ok {
			return id
		}
	}
	return name
}
