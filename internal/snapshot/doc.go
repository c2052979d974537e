// Package snapshot joins the three views of a node that answer "who dies in
// an OOM": processes from /proc, their memory cgroups and oom.group flags
// from the cgroup tree, and the pod and container each cgroup path belongs
// to. ps and victims read the node through it; the agent keeps its own
// view, updated from cgroup and process events (internal/agent).
package snapshot
