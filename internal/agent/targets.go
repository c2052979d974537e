package agent

import (
	"context"
	"fmt"
	"strings"

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
}

// podInfo is what the runtime says about a targeted pod.
type podInfo struct {
	pod        cri.Pod
	decision   policy.Decision
	containers map[string]string // container id -> name
}

// discover returns the current targets, keyed by container cgroup path.
// With a runtime, pods are chosen by the policy's selector and annotations
// and their containers found in the cgroup tree by id (reading the tree
// beats rebuilding paths for every driver); without one, the policy's
// cgroup glob chooses container cgroups directly.
func (a *Agent) discover(ctx context.Context) (map[string]*Target, error) {
	var pods map[string]*podInfo // by container id
	if a.rt != nil {
		var err error
		if pods, err = a.runtimePods(ctx); err != nil {
			return nil, err
		}
	}
	targets := make(map[string]*Target)
	var inside string // the last target found: Walk is pre-order
	err := a.cg.Walk(ctx, "/", func(cg string) error {
		if inside != "" && strings.HasPrefix(cg, inside+"/") {
			return nil
		}
		t := a.match(cg, pods)
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

func (a *Agent) match(cg string, pods map[string]*podInfo) *Target {
	o := cgroup.ParsePath(cg)
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
	id := o.ContainerID
	if id == "" && o.PodUID != "" && parentCgroup(cg) == o.PodCgroup {
		// A container directory whose name is not a 64-hex id: ask the
		// runtime's list rather than the path's shape.
		id = runtimeUnitID(cg[strings.LastIndexByte(cg, '/')+1:])
		o.ContainerCgroup = cg
	}
	if id == "" || o.Conmon || cg != o.ContainerCgroup {
		return nil
	}
	p, ok := pods[id]
	if !ok {
		return nil
	}
	o.ContainerID = id
	return &Target{
		Cgroup: cg, PodCgroup: o.PodCgroup, PodUID: p.pod.UID, Namespace: p.pod.Namespace, PodName: p.pod.Name,
		ContainerID: o.ContainerID, Container: p.containers[o.ContainerID], Decision: p.decision,
	}
}

// runtimePods lists the pods the policy targets and their containers. Pod
// sandboxes (pause) are not containers in CRI, so they are never targets:
// killing the sandbox would restart the whole pod.
func (a *Agent) runtimePods(ctx context.Context) (map[string]*podInfo, error) {
	pods, err := a.rt.ListPods(ctx, a.cfg.Policy.Selector.Labels)
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	out := make(map[string]*podInfo)
	for _, p := range pods {
		d := a.cfg.Policy.Decide(policy.Target{PodUID: p.UID, Namespace: p.Namespace, Name: p.Name, Labels: p.Labels, Annotations: p.Annotations})
		if !d.Target {
			continue
		}
		cs, err := a.rt.ListContainers(ctx, p.ID)
		if err != nil {
			return nil, fmt.Errorf("list containers of pod %s/%s: %w", p.Namespace, p.Name, err)
		}
		info := &podInfo{pod: p, decision: d, containers: map[string]string{}}
		for _, c := range cs {
			if c.State == cri.StateExited {
				continue
			}
			info.containers[c.ID] = c.Name
			out[c.ID] = info
		}
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
