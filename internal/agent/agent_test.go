package agent

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"podwarden/internal/policy"
)

const (
	uidA = "11111111-2222-3333-4444-555555555555"
	uidB = "66666666-7777-8888-9999-000000000000"
	cidA = "aaaa000000000000000000000000000000000000000000000000000000000001"
	cidB = "bbbb000000000000000000000000000000000000000000000000000000000002"
)

var (
	cgA     = "/kubepods/pod" + uidA + "/" + cidA
	cgANest = cgA + "/init.scope"
	cgB     = "/kubepods/burstable/pod" + uidB + "/" + cidB
)

// seedLikeNode is a node as kubelet leaves it on cgroup v2: a Guaranteed
// pod (target) whose container cgroups carry oom.group=1 and whose
// processes run at -997, a Burstable pod the selector leaves out, and host
// daemons.
func seedLikeNode(t *testing.T) *node {
	n := newNode(t)
	n.mkcg("/kubepods", 0)
	n.mkcg("/kubepods/pod"+uidA, 0)
	n.mkcg(cgA, 1)
	n.mkcg(cgANest, 1)
	n.mkcg("/kubepods/burstable", 0)
	n.mkcg("/kubepods/burstable/pod"+uidB, 0)
	n.mkcg(cgB, 1)
	n.mkcg("/system.slice", 0)
	n.mkcg("/system.slice/sshd.service", 0)
	n.mkcg("/system.slice/systemd-networkd.service", 0)
	n.mkcg("/system.slice/systemd-udevd.service", 0)
	for _, p := range []proc{
		{100, "jupyter-lab", -997, cgA},
		{101, "python", -997, cgA},
		{102, "systemd", -997, cgANest},
		{200, "nginx", 500, cgB},
		{300, "sshd", 0, "/system.slice/sshd.service"},
		{301, "sshd", -1000, "/system.slice/sshd.service"},
		{302, "systemd-network", 0, "/system.slice/systemd-networkd.service"},
		{303, "systemd-udevd", 0, "/system.slice/systemd-udevd.service"},
	} {
		n.addProc(p)
	}
	return n
}

func newTestAgent(t *testing.T, n *node, dryRun bool) *Agent {
	t.Helper()
	pol := policy.Default()
	pol.CgroupSelector = "/kubepods/pod*/*"
	cfg := n.config(t, pol)
	cfg.DryRun = dryRun
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestReconcileProtectsTargetsOnly(t *testing.T) {
	n := seedLikeNode(t)
	before := n.files()
	a := newTestAgent(t, n, false)
	changes, err := a.Reconcile(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if c.Err != nil {
			t.Errorf("change %+v failed: %v", c, c.Err)
		}
	}
	if got := a.Targets(); len(got) != 1 || got[0].Cgroup != cgA || got[0].PodUID != uidA {
		t.Fatalf("targets = %+v", got)
	}
	for cg, want := range map[string]string{cgA: "0", cgANest: "0", cgB: "1"} {
		if got := n.flag(cg); got != want {
			t.Errorf("oom.group of %s = %s, want %s", cg, got, want)
		}
	}
	for pid, want := range map[int]string{100: "900", 101: "900", 102: "900", 200: "500", 300: "-900", 301: "-1000", 302: "-900", 303: "0"} {
		if got := n.adj(pid); got != want {
			t.Errorf("adj of pid %d = %s, want %s", pid, got, want)
		}
	}
	// Every write the run made, and nothing else.
	changed := diffFiles(before, n.files())
	slices.Sort(changed)
	want := []string{
		filepath.Join(n.cgroup, cgA, "memory.oom.group"),
		filepath.Join(n.cgroup, cgANest, "memory.oom.group"),
		filepath.Join(n.proc, "100", "oom_score_adj"),
		filepath.Join(n.proc, "101", "oom_score_adj"),
		filepath.Join(n.proc, "102", "oom_score_adj"),
		filepath.Join(n.proc, "300", "oom_score_adj"),
		filepath.Join(n.proc, "302", "oom_score_adj"),
	}
	slices.Sort(want)
	if !slices.Equal(changed, want) {
		t.Fatalf("files written:\n%v\nwant:\n%v", changed, want)
	}

	// A second pass finds nothing to do.
	again, err := a.Reconcile(context.Background())
	if err != nil || len(again) != 0 {
		t.Fatalf("second pass: %v, %+v", err, again)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	n := seedLikeNode(t)
	before := n.files()
	a := newTestAgent(t, n, true)
	changes, err := a.Reconcile(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 7 {
		t.Fatalf("planned %d changes, want 7: %+v", len(changes), changes)
	}
	if changed := diffFiles(before, n.files()); len(changed) != 0 {
		t.Fatalf("dry run wrote %v", changed)
	}
}

func TestReconcileRepairsDrift(t *testing.T) {
	n := seedLikeNode(t)
	a := newTestAgent(t, n, false)
	if _, err := a.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	// What a container restart / in-place resize / kubectl exec does.
	n.write(filepath.Join(n.cgroup, cgA, "memory.oom.group"), "1\n")
	n.write(filepath.Join(n.proc, "101", "oom_score_adj"), "-997\n")
	changes, err := a.Reconcile(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 2 {
		t.Fatalf("changes = %+v", changes)
	}
	for _, c := range changes {
		if !c.Drift || c.Err != nil {
			t.Errorf("change %+v: want a successful drift repair", c)
		}
	}
	if n.flag(cgA) != "0" || n.adj(101) != "900" {
		t.Fatalf("drift not repaired: flag %s adj %s", n.flag(cgA), n.adj(101))
	}
}

func TestVanishedTargetsAreNotErrors(t *testing.T) {
	n := seedLikeNode(t)
	// pid 101 is listed in cgroup.procs but has exited.
	if err := os.RemoveAll(filepath.Join(n.proc, strconv.Itoa(101))); err != nil {
		t.Fatal(err)
	}
	a := newTestAgent(t, n, false)
	changes, err := a.Reconcile(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if c.PID == 101 {
			t.Fatalf("planned a write to a vanished process: %+v", c)
		}
		if c.Err != nil {
			t.Fatalf("change failed: %+v", c)
		}
	}
}

// Values keep their type from plan to apply and into --once -o json: an
// adj is a number, not text parsed back (issue 11).
func TestChangeValuesAreTyped(t *testing.T) {
	n := seedLikeNode(t)
	a := newTestAgent(t, n, true)
	changes, err := a.Reconcile(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var adj, flag *Change
	for i := range changes {
		switch changes[i].Kind {
		case KindPodAdj:
			adj = &changes[i]
		case KindOOMGroup:
			flag = &changes[i]
		}
	}
	if adj == nil || flag == nil {
		t.Fatalf("changes %+v: want an adj and a flag write", changes)
	}
	b, err := json.Marshal([]Change{*adj, *flag})
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got[0]["from"] != float64(-997) || got[0]["to"] != float64(900) || got[1]["from"] != float64(1) || got[1]["to"] != float64(0) {
		t.Fatalf("JSON %s: want numbers -997 -> 900 and 1 -> 0", b)
	}
}
