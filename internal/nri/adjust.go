package nri

import (
	"github.com/containerd/nri/pkg/api"

	"podwarden/internal/policy"
)

// OOMGroupKey is the cgroup v2 file the plugin sets through the runtime's
// unified resources (OCI linux.resources.unified).
const OOMGroupKey = "memory.oom.group"

// targetOf is the policy's view of a pod. The runtime fills these fields
// from the CRI sandbox config, which kubelet builds from the Pod object, so
// namespace, labels and annotations are the ones users wrote.
func targetOf(pod *api.PodSandbox) policy.Target {
	return policy.Target{
		PodUID:      pod.GetUid(),
		Namespace:   pod.GetNamespace(),
		Name:        pod.GetName(),
		Labels:      pod.GetLabels(),
		Annotations: pod.GetAnnotations(),
	}
}

// change is what the plugin asks the runtime to set on one container.
type change struct {
	oomGroup string // "0" or "1"; "" leaves memory.oom.group alone
	adj      int
	adjSet   bool
}

// plan turns a policy decision into a change. cgroupV2 must be false on
// cgroup v1 and hybrid hosts: runc rejects a spec with unified resources
// there, and a rejected spec fails the container, which is far worse than
// the OOM behaviour the plugin is trying to fix.
func plan(d policy.Decision, cgroupV2 bool) change {
	if !d.Target {
		return change{}
	}
	c := change{adj: d.Adj, adjSet: d.AdjSet}
	if cgroupV2 {
		switch d.OOMGroup {
		case policy.ModeSingle:
			c.oomGroup = "0"
		case policy.ModeGroup:
			c.oomGroup = "1"
		}
	}
	return c
}

func (c change) empty() bool { return c.oomGroup == "" && !c.adjSet }

// adjustment is the change as a creation-time adjustment, nil when there is
// nothing to change.
func (c change) adjustment() *api.ContainerAdjustment {
	if c.empty() {
		return nil
	}
	a := &api.ContainerAdjustment{}
	if c.oomGroup != "" {
		a.AddLinuxUnified(OOMGroupKey, c.oomGroup)
	}
	if c.adjSet {
		adj := c.adj
		a.SetLinuxOomScoreAdj(&adj)
	}
	return a
}

// hold returns the update that keeps memory.oom.group at the policy's value
// when a resource update for container id would change it, or nil. kubelet
// resends memory.oom.group=1 with every in-place resize; a request without
// the key leaves the value set at creation alone (runtimes merge unified
// resources into the spec), so the plugin stays out of it and does not
// claim the key for nothing: NRI fails a request in which two plugins set
// the same key.
func (c change) hold(id string, requested *api.LinuxResources) *api.ContainerUpdate {
	if c.oomGroup == "" {
		return nil
	}
	v, ok := requested.GetUnified()[OOMGroupKey]
	if !ok || v == c.oomGroup {
		return nil
	}
	u := &api.ContainerUpdate{}
	u.SetContainerId(id)
	u.AddLinuxUnified(OOMGroupKey, c.oomGroup)
	return u
}

// fix returns the update that corrects memory.oom.group on a container that
// already exists when the plugin connects, or nil when its spec agrees. A
// spec without the key means the runtime never wrote the file, so it holds
// the kernel's default 0. Such updates are marked IgnoreFailure: a
// container that exits while the runtime applies them must not fail the
// plugin's registration, and the agent repairs whatever is left.
func (c change) fix(id string, current *api.LinuxResources) *api.ContainerUpdate {
	if c.oomGroup == "" {
		return nil
	}
	v, ok := current.GetUnified()[OOMGroupKey]
	if ok && v == c.oomGroup || !ok && c.oomGroup == "0" {
		return nil
	}
	u := &api.ContainerUpdate{}
	u.SetContainerId(id)
	u.AddLinuxUnified(OOMGroupKey, c.oomGroup)
	u.SetIgnoreFailure()
	return u
}
