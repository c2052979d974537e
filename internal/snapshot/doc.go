// Package snapshot joins the three views of a node that answer "who dies in
// an OOM": processes from /proc, their memory cgroups and oom.group flags
// from the cgroup tree, and the pod and container each cgroup path belongs
// to. ps, victims and the agent read the node through it.
package snapshot
