package agent

import (
	"encoding/json"
	"flag"
	"os"
	"testing"

	"podwarden/internal/policy"
	"podwarden/internal/target"
)

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
