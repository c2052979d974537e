// Package cri owns talking to the container runtime over the Kubernetes
// Container Runtime Interface (CRI): finding the runtime's socket
// (containerd, CRI-O or cri-dockerd), listing pod sandboxes and containers,
// reading a container's main PID and cgroup from its verbose status, and
// following the runtime's container event stream.
//
// The event stream is a latency optimisation, never the source of truth:
// CRI-O without enable_pod_events ends it at once, and any runtime restart
// ends it, so callers keep a periodic re-list and call Events again.
//
// CgroupPath turns the cgroupsPath a runtime reports (kubelet's systemd
// "slice:prefix:name" form or a cgroupfs path) into the path the kernel shows
// in /proc/PID/cgroup, so the agent can compare the two.
package cri
