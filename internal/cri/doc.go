// Package cri owns talking to the container runtime over the Kubernetes
// Container Runtime Interface (CRI): finding the runtime's socket
// (containerd, CRI-O or cri-dockerd), listing pod sandboxes and containers,
// and following the runtime's container event stream.
//
// The event stream is a latency optimisation, never the source of truth:
// CRI-O without enable_pod_events ends it at once, and any runtime restart
// ends it, so callers keep a periodic re-list and call Events again.
//
// A container's processes and cgroup are not asked of the runtime: the
// agent finds them from /proc/PID/cgroup, which is right for every cgroup
// driver and runtime.
package cri
