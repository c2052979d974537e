package agent

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"testing"

	"podwarden/internal/cgwatch"
	"podwarden/internal/policy"
	"podwarden/internal/target"
)

// TestPodCreatedInsideGlobTarget: a glob's target that was a plain
// container when discovered (a kind node before its first pod) is dropped
// as soon as a pod cgroup appears inside it, and the pod's container is
// taken on its own. The old agent kept the parent: the pod's container was
// hidden inside it until the cgroup went away.
func TestPodCreatedInsideGlobTarget(t *testing.T) {
	const (
		uid  = "30e633b5-4140-4774-9122-1b9e140c8556"
		cid  = "2c6ca22c5968ca227b2b77480c87fa56044a98fb92280ce03e613d95b6ea505b"
		node = "/docker/" + cid
		pod  = node + "/kubepods/burstable/pod" + uid
		ctr  = pod + "/" + cid
	)
	n := newNode(t)
	n.mkcg(node, 0)
	n.addProc(proc{pid: 100, comm: "systemd", adj: 0, cgroup: node})
	pol := policy.Default()
	pol.Protected = nil
	// Loads: /docker/<id> is a container until a pod appears in it.
	pol.CgroupSelector = "/docker/**"
	if err := pol.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := New(n.config(t, pol))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := a.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got := a.Targets(); len(got) != 1 || got[0].Cgroup != node {
		t.Fatalf("before the pod: targets %+v, want %s", got, node)
	}
	n.mkcg(pod, 0)
	n.mkcg(ctr, 0)
	n.addProc(proc{pid: 101, comm: "app", adj: -997, cgroup: ctr})
	a.onDir(ctx, pod, cgwatch.Created)
	a.onDir(ctx, ctr, cgwatch.Created)
	got := a.Targets()
	if len(got) != 1 || got[0].Cgroup != ctr {
		t.Fatalf("after the pod: targets %+v, want %s alone", got, ctr)
	}
	if adj := n.adj(101); adj != "900" {
		t.Errorf("the pod's process: adj %s, want 900", adj)
	}
}

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// TestTargetJSON: a target's JSON (agent --once -o json, the schema in
// docs/schemas/agent-once.schema.json) keeps its keys and their order
// whatever struct the fields live in. The golden was written before the
// container's identity moved to internal/target.
func TestTargetJSON(t *testing.T) {
	ts := []Target{
		{Ref: target.Ref{Cgroup: "/system.slice/jupyterhub.service"}, Decision: policy.Decision{Reason: "matches cgroupSelector"}},
	}
	full := Target{Decision: policy.Decision{Target: true, OOMGroup: policy.ModeGroup, Adj: 900, AdjSet: true, Reason: "selected",
		Preempt: policy.PreemptDecision{Mode: policy.PreemptOn, Keep: []string{"jupyter-lab"}}}}
	full.Cgroup = "/kubepods/burstable/pod5f3c2b1a-9e8d-4c7b-a6f5-e4d3c2b1a098/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	full.PodCgroup = "/kubepods/burstable/pod5f3c2b1a-9e8d-4c7b-a6f5-e4d3c2b1a098"
	full.PodUID = "5f3c2b1a-9e8d-4c7b-a6f5-e4d3c2b1a098"
	full.Namespace, full.PodName = "users", "nb-0"
	full.ContainerID, full.Container = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "notebook"
	ts = append(ts, full)
	got, err := json.MarshalIndent(ts, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/targets.json"
	if *update {
		if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != string(got)+"\n" {
		t.Errorf("targets as JSON:\n%s\nwant (%s):\n%s", got, golden, want)
	}
}
