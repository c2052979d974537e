package agent

import (
	"cmp"
	"fmt"
	"slices"

	"podwarden/internal/cgroup"
	"podwarden/internal/policy"
)

// Candidate is a container a one-shot pass considered, and why it is or is
// not a target: what `agent --once` prints, so an empty result is never a
// silent one.
type Candidate struct {
	Namespace   string `json:"namespace,omitempty"`
	Pod         string `json:"pod,omitempty"`
	PodUID      string `json:"pod_uid,omitempty"`
	Container   string `json:"container,omitempty"`
	ContainerID string `json:"container_id,omitempty"`
	// Cgroup is the container's cgroup, "" when none was found.
	Cgroup string `json:"cgroup,omitempty"`
	Target bool   `json:"target"`
	Reason string `json:"reason"`
}

// Candidates returns every container the last Reconcile considered (the
// runtime's containers, or without one every kubelet container cgroup),
// sorted by namespace, pod and container. Run does not collect them.
func (a *Agent) Candidates() []Candidate {
	out := slices.Clone(a.candidates)
	slices.SortFunc(out, func(x, y Candidate) int {
		return cmp.Or(cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Pod, y.Pod), cmp.Compare(x.PodUID, y.PodUID),
			cmp.Compare(x.Container, y.Container), cmp.Compare(x.Cgroup, y.Cgroup))
	})
	return out
}

// explainTargets adds the targets of the last pass and, with a runtime,
// the selected containers no cgroup was found for.
func (a *Agent) explainTargets() {
	found := map[string]bool{}
	for _, cg := range sortedKeys(a.targets) {
		t := a.targets[cg]
		found[t.ContainerID] = true
		l := t.Labels()
		a.candidates = append(a.candidates, Candidate{Namespace: t.Namespace, Pod: l[1], PodUID: t.PodUID, Container: l[2],
			ContainerID: t.ContainerID, Cgroup: t.Cgroup, Target: true, Reason: t.Decision.Reason})
	}
	for _, id := range sortedKeys(a.pods) {
		if found[id] {
			continue
		}
		p := a.pods[id]
		a.candidates = append(a.candidates, Candidate{Namespace: p.pod.Namespace, Pod: p.pod.Name, PodUID: p.pod.UID,
			Container: p.containers[id], ContainerID: id,
			Reason: fmt.Sprintf("selected (%s), but no cgroup named for the container was found under %s", p.decision.Reason, a.cg.Dir("/"))})
	}
}

// explainCgroup records why kubelet container cgroup cg is not a target
// without a runtime; other cgroups are not candidates.
func (a *Agent) explainCgroup(cg string) {
	o := cgroup.ParsePath(cg)
	if !o.InPod() || o.ContainerCgroup != cg || o.Conmon {
		return
	}
	c := Candidate{PodUID: o.PodUID, Pod: o.PodUID, Container: cgroup.ShortID(o.ContainerID), ContainerID: o.ContainerID, Cgroup: cg}
	if p, ok := a.podNames.lookup(o.PodUID); ok {
		c.Namespace, c.Pod = p.Namespace, p.Name
	}
	switch sel := a.cfg.Policy.CgroupSelector; {
	case a.selfPod != "" && o.PodUID == a.selfPod:
		c.Reason = "the agent's own pod"
	case sel != "" && !policy.MatchGlob(sel, cg):
		c.Reason = "does not match cgroupSelector " + sel
	default:
		c.Reason = "not a target"
	}
	a.candidates = append(a.candidates, c)
}
