package agent

import (
	"context"
	"path/filepath"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-client/pkg/fake"

	"podwarden/internal/cri"
	"podwarden/internal/policy"
)

// TestReconcileThroughCRI runs the agent in runtime mode against a CRI
// runtime served over a real unix socket. The runtime is k8s.io/cri-client's
// fake: no containerd or CRI-O can run here. The policy picks pods by label
// and namespace; the containers are found in a fixture cgroup tree by the
// ids the runtime reports, and the pod sandbox itself is never a target.
func TestReconcileThroughCRI(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "cri.sock")
	f := fake.NewFakeRemoteRuntime()
	if err := f.Start("unix://" + sock); err != nil {
		t.Fatalf("start fake runtime: %v", err)
	}
	t.Cleanup(f.Stop)
	ctx := context.Background()
	rs := f.RuntimeService
	mkPod := func(name, ns, uid string, labels map[string]string) string {
		id, err := rs.RunPodSandbox(ctx, &runtimeapi.PodSandboxConfig{
			Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Uid: uid, Namespace: ns}, Labels: labels,
		}, "")
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	mkCtr := func(pod, name string) string {
		id, err := rs.CreateContainer(ctx, pod, &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: name}, Image: &runtimeapi.ImageSpec{Image: "busybox"},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := rs.StartContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	podA := mkPod("jupyter-alice", "hub", uidA, map[string]string{"app": "latch-pods"})
	podB := mkPod("kube-proxy", "kube-system", uidB, map[string]string{"app": "latch-pods"})
	notebook := mkCtr(podA, "notebook")
	proxy := mkCtr(podB, "proxy")
	// The agent's own pod, which the selector would pick: never a target.
	const uidSelf = "99999999-8888-7777-6666-555555555555"
	podSelf := mkPod("podwarden-x7k2p", "podwarden", uidSelf, map[string]string{"app": "latch-pods"})
	self := mkCtr(podSelf, "agent")

	// kubelet's cgroupfs layout, with the runtime's own ids as names.
	n := newNode(t)
	cgNotebook := "/kubepods/pod" + uidA + "/" + notebook
	cgSandbox := "/kubepods/pod" + uidA + "/" + podA
	cgProxy := "/kubepods/burstable/pod" + uidB + "/" + proxy
	cgSelf := "/kubepods/burstable/pod" + uidSelf + "/" + self
	for _, cg := range []string{"/kubepods", "/kubepods/pod" + uidA, cgNotebook, cgSandbox, "/kubepods/burstable", "/kubepods/burstable/pod" + uidB, cgProxy,
		"/kubepods/burstable/pod" + uidSelf, cgSelf} {
		n.mkcg(cg, 1)
	}
	n.addProc(proc{503, "podwarden", -997, cgSelf})
	n.addProc(proc{500, "jupyter-lab", -997, cgNotebook})
	n.addProc(proc{501, "pause", -998, cgSandbox})
	n.addProc(proc{502, "kube-proxy", -997, cgProxy})

	client, err := cri.Dial(ctx, "unix://"+sock)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	pol := policy.Default()
	pol.Selector.Labels = map[string]string{"app": "latch-pods"}
	pol.Protected = nil
	cfg := n.config(t, pol)
	cfg.Runtime, cfg.OwnNamespace = client, "podwarden"
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	targets := a.Targets()
	if len(targets) != 1 || targets[0].Cgroup != cgNotebook || targets[0].PodName != "jupyter-alice" ||
		targets[0].Namespace != "hub" || targets[0].Container != "notebook" {
		t.Fatalf("targets = %+v", targets)
	}
	for pid, want := range map[int]string{500: "900", 501: "-998", 502: "-997", 503: "-997"} {
		if got := n.adj(pid); got != want {
			t.Errorf("pid %d adj = %s, want %s", pid, got, want)
		}
	}
	for cg, want := range map[string]string{cgNotebook: "0", "/kubepods/pod" + uidA: "0", cgSandbox: "1", cgProxy: "1", cgSelf: "1"} {
		if got := n.flag(cg); got != want {
			t.Errorf("oom.group of %s = %s, want %s", cg, got, want)
		}
	}
}
