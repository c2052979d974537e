// Package target owns what podwarden knows of one target container: where
// it is (its memory cgroup), whose it is (pod and container, as far as the
// runtime or the cgroup path said), and how metrics and logs name it. The
// agent (internal/agent) and early action (internal/preempt) each embed a
// Ref in their own Target, so the same container gets the same `container`
// label, and the two packages' series join, however it was found.
package target

import "podwarden/internal/cgroup"

// Ref is a target container's identity. The JSON tags are the agent's
// output keys (agent --once -o json): an embedding struct's JSON carries
// them flat, in this order.
type Ref struct {
	// Cgroup is the container's memory cgroup path (host tree); everything
	// below it belongs to the container.
	Cgroup string `json:"cgroup"`
	// PodCgroup is its pod's cgroup, where the path shows one.
	PodCgroup string `json:"pod_cgroup,omitempty"`
	PodUID    string `json:"pod_uid,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	PodName   string `json:"pod,omitempty"`
	// ContainerID is the runtime's id, or the one its cgroup path carries;
	// Container its name where the runtime told it.
	ContainerID string `json:"container_id,omitempty"`
	Container   string `json:"container,omitempty"`
}

// ContainerLabel is the container's `container` label in metrics and
// logs (cgroup.ContainerLabel).
func (r Ref) ContainerLabel() string {
	return cgroup.ContainerLabel(r.Container, r.ContainerID, r.Cgroup)
}

// PodLabel is the metrics' pod label: the pod's name (the namespace is a
// label of its own), else its UID.
func (r Ref) PodLabel() string {
	if r.PodName != "" {
		return r.PodName
	}
	return r.PodUID
}

// Labels are the namespace, pod and container labels of the container's
// series.
func (r Ref) Labels() [3]string {
	return [3]string{r.Namespace, r.PodLabel(), r.ContainerLabel()}
}

// PodRef names the pod in logs and changes: namespace/name, else its UID.
func (r Ref) PodRef() string {
	if r.PodName != "" {
		return r.Namespace + "/" + r.PodName
	}
	return r.PodUID
}

// Name is how logs and messages call the container: namespace/pod/name,
// namespace/pod when the runtime did not name it, else its cgroup.
func (r Ref) Name() string {
	switch {
	case r.PodName != "" && r.Container != "":
		return r.Namespace + "/" + r.PodName + "/" + r.Container
	case r.PodName != "":
		return r.Namespace + "/" + r.PodName
	}
	return r.Cgroup
}
