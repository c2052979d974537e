// Package podname names pods by namespace/name on a node that knows them
// by UID: cgroup paths and kernel OOM reports carry only the pod UID.
//
// A Resolver asks its Listers in order and keeps the first answer for each
// UID: the container runtime's pod sandboxes when a binary links a CRI
// client (podwarden-agent), then the kubelet's pod log directories
// (/var/log/pods/<namespace>_<name>_<uid>), which need no network call and
// outlive the pod's containers until the kubelet removes them. A pod
// neither knows stays its UID. Nothing is read until a name is asked for.
package podname
