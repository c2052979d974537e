package policy

import (
	"fmt"
	"slices"
	"strings"

	"podwarden/internal/cgroup"
)

// NeverTarget says why cgroup path cg may never be a target container,
// whatever a selector says, or "" when it may be one. A target's every
// process gets the pod adj and everything below it belongs to it, so a
// parent level as a target would raise host daemons (the root, a systemd
// slice) or swallow the containers below it, each with its own pod and
// decision (a QoS level, a pod). The kubelet's levels are read by
// cgroup.ParsePath, for both drivers and any cgroupRoot: a path is a pod
// level when it parses as its own pod cgroup, and a QoS or kubepods level
// when a pod directory named below it would parse as a pod.
func NeverTarget(cg string) string {
	segs := segments(cg)
	if len(segs) == 0 {
		return "the root cgroup, parent of every process on the host"
	}
	cg = "/" + strings.Join(segs, "/")
	last := segs[len(segs)-1]
	if o := cgroup.ParsePath(cg); o.InPod() && o.PodCgroup == cg {
		return "a pod cgroup, parent of the pod's containers"
	}
	if parentOfPods(cg, last) {
		return "a kubelet kubepods or QoS level, parent of pod cgroups"
	}
	up := "" // the parent's name: a node in a container (kind) has its own system.slice
	if len(segs) > 1 {
		up = segs[len(segs)-2]
	}
	switch {
	case up == "system.slice" && slices.Contains(criticalUnits, last),
		strings.HasPrefix(up, "user-") && strings.HasSuffix(up, ".slice") && (strings.HasPrefix(last, "session-") && strings.HasSuffix(last, ".scope") || strings.HasPrefix(last, "user@")):
		return "the unit of a host daemon or login session the node needs"
	case strings.HasSuffix(last, ".slice"):
		return "a systemd slice, parent of other units (host services, user sessions or pods)"
	case len(segs) == 1 && last == "init.scope":
		return "systemd's own cgroup (PID 1)"
	}
	if dockerParent(cg) {
		return "Docker's parent of containers"
	}
	return ""
}

// dockerParent reports whether cg is where Docker's cgroupfs driver puts
// its containers.
func dockerParent(cg string) bool {
	c := cg + "/" + exampleContainerID
	return cgroup.ParseDockerPath(c).ContainerCgroup == c
}

// Names the kubelet and runtimes would give a pod and a container, used to
// ask cgroup.ParsePath whether a level is a parent of pods and to build
// the representative paths below.
const (
	exampleUID         = "0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0"
	exampleContainerID = "3b1d0e3c5a6f7e8d9c0b1a2f3e4d5c6b7a8f9e0d1c2b3a4f5e6d7c8b9a0f1e2d"
)

// parentOfPods reports whether cg (whose last segment is last) is a level
// the kubelet puts pod cgroups in: its kubepods root or a QoS level.
func parentOfPods(cg, last string) bool {
	children := []string{"pod" + exampleUID}
	if base, ok := strings.CutSuffix(last, ".slice"); ok {
		children = append(children, base+"-pod"+strings.ReplaceAll(exampleUID, "-", "_")+".slice")
	}
	for _, c := range children {
		p := cg + "/" + c
		if o := cgroup.ParsePath(p); o.PodCgroup == p {
			return true
		}
	}
	return false
}

// hostPaths are cgroups a selector must not match: parent levels of every
// layout podwarden reads (docs/cgroup-layouts.md) and the units of the
// daemons a node cannot lose. NeverTarget names each of them (a test says
// so), so the load-time check and the match-time guard cannot disagree.
var hostPaths = []string{
	"/",
	"/init.scope",
	"/system.slice",
	"/user.slice",
	"/user.slice/user-1000.slice",
	"/machine.slice",
	"/docker",
	"/kubepods",
	"/kubepods/burstable",
	"/kubepods/besteffort",
	"/kubepods.slice",
	"/kubepods.slice/kubepods-burstable.slice",
	"/kubepods.slice/kubepods-besteffort.slice",
	"/kubelet.slice",
	"/kubelet.slice/kubelet-kubepods.slice",
	"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice",
	"/user.slice/user-1000.slice/session-1.scope",
	"/user.slice/user-1000.slice/user@1000.service",
}

func init() {
	for _, u := range criticalUnits {
		hostPaths = append(hostPaths, "/system.slice/"+u)
	}
}

// criticalUnits are the services of daemons a node cannot lose. A
// selector may name a service on purpose ("/system.slice/batch-*.service"),
// but not these: the node's lifeline would get the pod adj.
var criticalUnits = []string{
	"kubelet.service", "containerd.service", "crio.service", "docker.service",
	"sshd.service", "ssh.service",
	"systemd-journald.service", "systemd-networkd.service", "systemd-resolved.service",
}

// podLevels are pod cgroups of each layout with a container below, so a
// selector that names pods instead of their containers is caught: the
// agent never targets a pod cgroup, so it would select none of them.
var podLevels = []struct{ pod, container string }{
	{"/kubepods/pod" + exampleUID, exampleContainerID},
	{"/kubepods/burstable/pod" + exampleUID, exampleContainerID},
	{"/kubepods/besteffort/pod" + exampleUID, "crio-" + exampleContainerID},
	{"/kubepods.slice/kubepods-pod" + underscored(exampleUID) + ".slice", "cri-containerd-" + exampleContainerID + ".scope"},
	{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + underscored(exampleUID) + ".slice", "cri-containerd-" + exampleContainerID + ".scope"},
	{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + underscored(exampleUID) + ".slice", "crio-" + exampleContainerID + ".scope"},
	{"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod" + underscored(exampleUID) + ".slice", "cri-containerd-" + exampleContainerID + ".scope"},
}

func underscored(uid string) string { return strings.ReplaceAll(uid, "-", "_") }

// checkCgroupSelector refuses a selector that reaches a host level, a
// host daemon, or a kubelet level without the containers below it. A
// glob is checked against representative paths: it cannot be solved for
// every path a node may have, so the agent also applies NeverTarget to
// every cgroup it considers. A subtree glob such as "/kubepods/**" matches
// /kubepods itself too, and is fine: the agent reads it as the containers
// in that subtree and never targets the kubelet's levels or Docker's.
func checkCgroupSelector(sel string) error {
	if sel == "" {
		return nil
	}
	if err := checkGlob(sel); err != nil {
		return err
	}
	for _, p := range hostPaths {
		if MatchGlob(sel, p) && !containerParent(p) {
			return fmt.Errorf("%q would make %s a target: it is %s, and every process below it would get the pod adj; name container cgroups (e.g. '/kubepods*/**') or one service", sel, p, NeverTarget(p))
		}
	}
	for _, l := range podLevels {
		for _, p := range []string{cgroup.Parent(l.pod), l.pod} {
			if MatchGlob(sel, p) && !MatchGlob(sel, l.pod+"/"+l.container) {
				return fmt.Errorf("%q matches %s, %s, but not the containers in it (%s): the agent never targets that level, so it would select none of them; add '/*' or '/**' to name them", sel, p, NeverTarget(p), l.pod+"/"+l.container)
			}
		}
	}
	return nil
}

// containerParent reports whether p is a level that holds only
// containers (the kubelet's kubepods, QoS levels, Docker's parent): the
// agent never targets it, and a subtree glob may therefore start there.
func containerParent(p string) bool {
	segs := segments(p)
	return len(segs) > 0 && (parentOfPods(p, segs[len(segs)-1]) || dockerParent(p))
}
