package agent

import (
	"context"
	"strings"
	"testing"

	"podwarden/internal/policy"
)

// Without a runtime the agent finds the kubelet's container cgroups by
// itself: both cgroup drivers, every QoS level, containerd, CRI-O and
// Docker names, crun's extra sub-cgroup, a kubelet with a cgroupRoot (kind).
// Pod cgroups, CRI-O's conmon scopes, non-pod containers and host services
// are not targets. The documented glob '/kubepods*/**/pod*/*' matched no
// container of the systemd driver; no glob is needed now.
func TestRuntimelessFindsKubeletContainers(t *testing.T) {
	const (
		uid  = "30e633b5-4140-4774-9122-1b9e140c8556"
		uidU = "30e633b5_4140_4774_9122_1b9e140c8556"
		cid  = "2c6ca22c5968ca227b2b77480c87fa56044a98fb92280ce03e613d95b6ea505b"
	)
	type cg struct {
		path   string
		target bool
		proc   string // a process in this cgroup ("" none); raised when in a target
	}
	for _, tc := range []struct {
		name     string
		selector string
		cgroups  []cg
	}{
		{name: "cgroupfs containerd guaranteed", cgroups: []cg{
			{path: "/kubepods/pod" + uid}, {path: "/kubepods/pod" + uid + "/" + cid, target: true, proc: "app"}}},
		{name: "cgroupfs containerd burstable", cgroups: []cg{
			{path: "/kubepods/burstable/pod" + uid + "/" + cid, target: true, proc: "app"}}},
		{name: "cgroupfs CRI-O besteffort with conmon", cgroups: []cg{
			{path: "/kubepods/besteffort/pod" + uid + "/crio-" + cid, target: true, proc: "app"},
			{path: "/kubepods/besteffort/pod" + uid + "/crio-conmon-" + cid, proc: "conmon"}}},
		{name: "cgroupfs crun container sub-cgroup", cgroups: []cg{
			{path: "/kubepods/burstable/pod" + uid + "/crio-" + cid, target: true},
			{path: "/kubepods/burstable/pod" + uid + "/crio-" + cid + "/container", proc: "app"}}},
		{name: "systemd containerd burstable", cgroups: []cg{
			{path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice"},
			{path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope", target: true, proc: "app"}}},
		{name: "systemd CRI-O guaranteed with conmon", cgroups: []cg{
			{path: "/kubepods.slice/kubepods-pod" + uidU + ".slice/crio-" + cid + ".scope", target: true, proc: "app"},
			{path: "/kubepods.slice/kubepods-pod" + uidU + ".slice/crio-conmon-" + cid + ".scope", proc: "conmon"}}},
		{name: "systemd CRI-O crun sub-cgroup", cgroups: []cg{
			{path: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/crio-" + cid + ".scope", target: true},
			{path: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/crio-" + cid + ".scope/container", proc: "app"}}},
		{name: "systemd docker besteffort", cgroups: []cg{
			{path: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/docker-" + cid + ".scope", target: true, proc: "app"}}},
		{name: "systemd kubelet cgroupRoot (kind)", cgroups: []cg{
			{path: "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope", target: true, proc: "app"}}},
		{name: "not pods", cgroups: []cg{
			{path: "/system.slice/sshd.service", proc: "sshd"},
			{path: "/docker/" + cid, proc: "app"},
			{path: "/kubepods/burstable/podnot-a-uid/" + cid, proc: "app"}}},
		{name: "selector narrows to burstable", selector: "/kubepods*/**/*burstable*/**", cgroups: []cg{
			{path: "/kubepods/burstable/pod" + uid + "/" + cid, target: true, proc: "app"},
			{path: "/kubepods/besteffort/pod" + strings.Replace(uid, "3", "4", 1) + "/" + cid, proc: "app"},
			{path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope", target: true, proc: "app"}}},
		{name: "selector cannot make a pod cgroup or conmon a target", selector: "/kubepods/**", cgroups: []cg{
			{path: "/kubepods/burstable/pod" + uid, proc: "pause"},
			{path: "/kubepods/burstable/pod" + uid + "/crio-conmon-" + cid, proc: "conmon"},
			{path: "/kubepods/burstable/pod" + uid + "/crio-" + cid, target: true, proc: "app"}}},
		// The load-time check refuses '**'; these rows hold the match-time
		// guard alone to it. The old agent made the root cgroup the one
		// target: every process below it, sshd and the shell included,
		// went to 900.
		{name: "'**' never targets the root, a host slice, a daemon or a kubelet level", selector: "**", cgroups: []cg{
			{path: "/system.slice", proc: "systemd"},
			{path: "/system.slice/sshd.service", proc: "sshd"},
			{path: "/user.slice/user-1000.slice/session-1.scope", proc: "bash"},
			{path: "/system.slice/batch-1.service", target: true, proc: "job"},
			{path: "/kubepods/burstable/pod" + uid, proc: "pause"},
			{path: "/kubepods/burstable/pod" + uid + "/" + cid, target: true, proc: "app"}}},
		// A kind node is a Docker container holding pods: as a target it
		// hid them, and raised the node's own systemd and kubelet.
		{name: "a glob's match holding pods is not a target; its containers are", selector: "/docker/**", cgroups: []cg{
			{path: "/docker/" + cid, proc: "systemd"},
			{path: "/docker/" + cid + "/system.slice/kubelet.service", proc: "kubelet"},
			{path: "/docker/" + cid + "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + uidU + ".slice", proc: "pause"},
			{path: "/docker/" + cid + "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope", target: true, proc: "app"}}},
		{name: "a glob's match holding pods is dropped even when none of them match", selector: "/docker/*", cgroups: []cg{
			{path: "/docker/" + cid, proc: "systemd"},
			{path: "/docker/" + cid + "/kubepods/pod" + uid + "/" + cid, proc: "app"}}},
		{name: "selector outside pods chooses alone", selector: "/system.slice/batch-*.service", cgroups: []cg{
			{path: "/system.slice/batch-1.service", target: true, proc: "job"},
			{path: "/kubepods/pod" + uid + "/" + cid, proc: "app"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t)
			var want []string
			pids := map[int]bool{} // pid -> raised?
			for i, c := range tc.cgroups {
				n.mkcg(c.path, 1)
				if c.target {
					want = append(want, c.path)
				}
				if c.proc != "" {
					pid := 100 + i
					n.addProc(proc{pid: pid, comm: c.proc, adj: -997, cgroup: c.path})
					inTarget := false
					for _, o := range tc.cgroups {
						inTarget = inTarget || (o.target && (c.path == o.path || strings.HasPrefix(c.path, o.path+"/")))
					}
					pids[pid] = inTarget
				}
			}
			pol := policy.Default()
			pol.Protected = nil
			pol.CgroupSelector = tc.selector
			a, err := New(n.config(t, pol))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.Reconcile(context.Background()); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, tg := range a.Targets() {
				got = append(got, tg.Cgroup)
			}
			if strings.Join(got, "\n") != strings.Join(sorted(want), "\n") {
				t.Errorf("targets\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(sorted(want), "\n"))
			}
			for pid, raised := range pids {
				wantAdj := "-997"
				if raised {
					wantAdj = "900"
				}
				if got := n.adj(pid); got != wantAdj {
					t.Errorf("pid %d: adj %s, want %s", pid, got, wantAdj)
				}
			}
			// Every kubelet container cgroup is a candidate, with why.
			for _, c := range a.Candidates() {
				if c.Reason == "" || (c.Target && !strings.Contains(c.Reason, "kubelet container cgroup") && !strings.Contains(c.Reason, "cgroupSelector")) {
					t.Errorf("candidate %+v: no reason", c)
				}
			}
		})
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// Label and namespace selectors cannot apply without a runtime: refused
// when the agent is made, not turned into a silent "no targets".
func TestRuntimelessRefusesPodSelectors(t *testing.T) {
	n := newNode(t)
	for _, tc := range []struct {
		name string
		set  func(*policy.Config)
		want string
	}{
		{"labels", func(c *policy.Config) { c.Selector.Labels = map[string]string{"app": "latch-pods"} }, "selector.labels"},
		{"excludeLabels", func(c *policy.Config) { c.Selector.ExcludeLabels = map[string]string{"skip": "true"} }, "selector.excludeLabels"},
		{"namespaces", func(c *policy.Config) { c.Selector.Namespaces = []string{"ml"} }, "selector.namespaces"},
		{"excludeNamespaces", func(c *policy.Config) { c.Selector.ExcludeNamespaces = []string{"kube-system", "monitoring"} }, "selector.excludeNamespaces"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pol := policy.Default()
			tc.set(&pol)
			_, err := New(n.config(t, pol))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "without a container runtime") {
				t.Fatalf("err = %v, want one naming %s", err, tc.want)
			}
		})
	}
	// The defaults and the agent's own namespace are not the operator's doing.
	pol := policy.Default()
	pol.Selector.ExcludeNamespaces = append(pol.Selector.ExcludeNamespaces, "podwarden")
	cfg := n.config(t, pol)
	cfg.OwnNamespace = "podwarden"
	if _, err := New(cfg); err != nil {
		t.Fatalf("default policy refused: %v", err)
	}
}
