// Package nri is podwarden's NRI plugin (github.com/containerd/nri): it puts
// the OOM policy into a container's spec while the runtime creates it, so a
// target container starts with memory.oom.group at the policy's value and
// its processes at the policy's oom_score_adj. There is no window in which
// the container runs unprotected, which the agent's after-the-fact writes
// cannot promise.
//
// It owns the mapping from a policy.Decision to NRI adjustments and
// updates (adjust.go, pure and table-tested), the plugin's handlers
// (plugin.go) and the connection to the runtime's NRI socket, with
// reconnects when the runtime restarts (run.go).
//
// What it cannot do, and leaves to the agent's reconcile loop: change the
// oom_score_adj of containers that were already running when it connected
// (NRI updates carry cgroup resources only), repair values put back by
// anything outside the runtime (systemd, a container restart the plugin
// missed while disconnected), and processes started later by kubectl exec.
//
// The plugin never fails a container: its handlers return no errors, a
// panic in one is recovered and logged, and it asks the runtime not to
// fail requests when it times out or disconnects. A container it could not
// handle is created as if the plugin were absent.
package nri
