package cgroup

import "strings"

// InContainer reports whether cgroup path p lies inside a container: a
// Kubernetes pod (ParsePath), or a container any runtime made outside
// Kubernetes, which names its cgroup for the container's 64-hex id
// (Docker's cgroupfs "/docker/<id>", systemd scopes "docker-<id>.scope",
// "libpod-<id>.scope", "cri-containerd-<id>.scope", "crio-<id>.scope") or
// is an LXC payload ("lxc.payload.<name>"). Host rules must never apply
// to such a process: a container's "sshd" is not the host's.
func InContainer(p string) bool {
	if ParsePath(p).InPod() {
		return true
	}
	for seg := range strings.SplitSeq(p, "/") {
		if isContainerID(seg) || strings.HasPrefix(seg, "lxc.payload.") {
			return true
		}
		name, ok := strings.CutSuffix(seg, ".scope")
		if i := strings.LastIndexByte(name, '-'); ok && i >= 0 && isContainerID(name[i+1:]) {
			return true
		}
	}
	return false
}
