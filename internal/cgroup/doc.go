// Package cgroup owns the cgroup filesystem as podwarden sees it: which
// hierarchy a host runs (v1, v2 or hybrid), the memory controller files that
// decide OOM behaviour (memory.oom.group, limits, usage, events, pressure),
// and what a cgroup path says about its owner (pod UID, QoS class, container
// id, runtime) for every kubelet cgroup driver and runtime layout, with the
// path helpers (Parent, Within, Base) every other package uses on cgroup
// paths.
//
// Readers take the mount point as a value so tests run on fixture trees.
package cgroup
