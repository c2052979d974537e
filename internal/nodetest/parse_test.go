package nodetest

import (
	"testing"
	"time"
)

// The parsers of what the guest and the agent print; they run without the
// node (go test ./internal/nodetest).

func TestWatchLog(t *testing.T) {
	for _, tc := range []struct {
		name    string
		out     string
		spans   map[string][2]float64
		noAgent [][2]float64
	}{
		{name: "all protected", out: "T 1.0 1\nT 1.2 1\n", spans: map[string][2]float64{}},
		{name: "protected by the next round", out: "T 1.0 1\nP 1.0 c1 7 1000 1\nT 1.2 1\nT 1.4 1\n",
			spans: map[string][2]float64{"c1/7": {1.0, 1.2}}},
		{name: "open at the end", out: "T 1.0 0\nP 1.0 c1 7 1000 1\nT 1.2 0\nP 1.2 c1 7 1000 1\n",
			spans: map[string][2]float64{"c1/7": {1.0, 1.2}}, noAgent: [][2]float64{{1.0, 1.2}}},
		{name: "longest of two spans", out: "T 1 1\nP 1 c1 7 0 1\nT 2 1\nT 3 1\nP 3 c1 7 0 1\nT 4 1\nP 4 c1 7 0 1\nT 6 1\n",
			spans: map[string][2]float64{"c1/7": {3, 6}}},
		{name: "agent gap", out: "T 1 1\nT 2 0\nT 3 0\nT 4 2\nT 5 1\n", spans: map[string][2]float64{}, noAgent: [][2]float64{{2, 4}}},
		{name: "garbage ignored", out: "T x\nP 1 c\nhello\n", spans: map[string][2]float64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spans, noAgent, _ := watchLog(tc.out)
			if len(spans) != len(tc.spans) {
				t.Fatalf("spans %v, want %v", spans, tc.spans)
			}
			for k, want := range tc.spans {
				s := spans[k]
				if s == nil || s.from != want[0] || s.to != want[1] {
					t.Errorf("%s: %+v, want %v", k, s, want)
				}
			}
			if len(noAgent) != len(tc.noAgent) {
				t.Fatalf("no agent %v, want %v", noAgent, tc.noAgent)
			}
			for i := range noAgent {
				if noAgent[i] != tc.noAgent[i] {
					t.Errorf("no agent %v, want %v", noAgent, tc.noAgent)
				}
			}
		})
	}
}

func TestAgentLogParsers(t *testing.T) {
	text := `time=x level=INFO msg="preempt engine running" node_pressure="psi trigger some 100ms 1s on /proc/pressure/memory" container_pressure="psi triggers"
time=x level=WARN msg="ended process under memory pressure" pod=users/slow container=main scope=node comm=hog pid=9 stall_pct=23 why="x"`
	json := `{"msg":"preempt engine running","node_pressure":"psi trigger full 200ms 2s on /proc/pressure/memory"}
{"msg":"ended process under memory pressure","scope":"node","comm":"hog","stall_pct":"41"}`
	// As the agent logs it under containerd's AppArmor profile (node test).
	polled := `{"msg":"preempt engine running","node_pressure":"polling /proc/pressure/memory every 100ms-250ms (PSI triggers unavailable: open /proc/pressure/memory: permission denied)"}
{"msg":"ended process under memory pressure","scope":"node","comm":"hog","stall_pct":"20"}`
	// Where AppArmor refuses /proc, the root cgroup's memory.pressure.
	rootcg := `{"msg":"preempt engine running","node_pressure":"psi trigger some 200000 2000000 on /host/sys/fs/cgroup/memory.pressure"}
{"msg":"ended process under memory pressure","scope":"node","comm":"hog","stall_pct":"30","fired_by":"psi trigger on /host/sys/fs/cgroup/memory.pressure; psi: available 80.0 MiB below minAvailable 100.0 MiB"}`
	if m := reFiredPSI.FindStringSubmatch(rootcg); m == nil || m[1] != "/host/sys/fs/cgroup/memory.pressure" {
		t.Errorf("fired_by: %q", m)
	}
	if m := reFiredPSI.FindStringSubmatch(`level=INFO msg="ended process under memory pressure" fired_by="poll (psi trigger on /proc/pressure/memory silent); fast fall: x"`); m != nil {
		t.Errorf("a poll read as a trigger: %q", m)
	}
	for _, tc := range []struct {
		name   string
		log    string
		bar    float64
		window time.Duration
		stall  int
		armed  bool
	}{
		{"text", text, 10, time.Second, 23, true},
		{"json", json, 10, 2 * time.Second, 41, true},
		{"polled", polled, chartPressure, chartPressureWindow, 20, false},
		{"root cgroup", rootcg, 10, 2 * time.Second, 30, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bar, w, armed, err := psiBar(tc.log)
			if err != nil || bar != tc.bar || w != tc.window || armed != tc.armed {
				t.Errorf("psiBar = %v %v %v %v, want %v %v %v", bar, w, armed, err, tc.bar, tc.window, tc.armed)
			}
			if _, st, ok := killLine(tc.log, "hog"); !ok || st != tc.stall {
				t.Errorf("killLine stall %d %v, want %d", st, ok, tc.stall)
			}
		})
	}
	if _, _, _, err := psiBar(`node_pressure="none (no PSI: x); available memory still falling stands in for pressure"`); err == nil {
		t.Error("psiBar accepted an engine without PSI")
	}
	if r, ok := growthRate("hog (pid 12) grew 160.0 MiB in the last 10s (x)"); !ok || r != 16<<20 {
		t.Errorf("growthRate = %v %v, want 16 MiB/s", r, ok)
	}
	if _, ok := growthRate("hog grew a lot"); ok {
		t.Error("growthRate read a message without a size")
	}
}
