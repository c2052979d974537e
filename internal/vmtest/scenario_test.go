package vmtest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// expectation is what the kernel must do to a scenario's processes in each
// mode. The two dead sets differ for every scenario, so a podwarden run in
// which the agent did nothing reproduces the k8s set and fails.
type expectation struct {
	k8sDead []string // as Kubernetes ships: the whole container (and, on a node OOM, daemons)
	pwDead  []string // with the agent: only the hogs
}

var expectations = map[string]expectation{
	"container-limit": {
		k8sDead: []string{"app", "tail", "worker"},
		pwDead:  []string{"tail"},
	},
	"node-oom": {
		k8sDead: []string{"app", "chronyd", "sshd", "systemd-network", "tail", "worker"},
		pwDead:  []string{"tail"},
	},
	"late-arrivals": {
		k8sDead: []string{"app", "exec-shell", "tail"},
		pwDead:  []string{"tail"},
	},
	"drift": {
		k8sDead: []string{"app", "tail", "worker"},
		pwDead:  []string{"tail"},
	},
	"nested": {
		k8sDead: []string{"app", "postgres", "systemd", "tail"},
		pwDead:  []string{"tail"},
	},
	"agent-restart": {
		k8sDead: []string{"new-app", "new-exec", "new-tail", "old-app", "old-tail"},
		pwDead:  []string{"new-tail", "old-tail"},
	},
}

func TestScenarioContainerLimit(t *testing.T) { runScenario(t, "container-limit") }
func TestScenarioNodeOOM(t *testing.T)        { runScenario(t, "node-oom") }
func TestScenarioLateArrivals(t *testing.T)   { runScenario(t, "late-arrivals") }
func TestScenarioDrift(t *testing.T)          { runScenario(t, "drift") }
func TestScenarioNested(t *testing.T)         { runScenario(t, "nested") }
func TestScenarioAgentRestart(t *testing.T)   { runScenario(t, "agent-restart") }

func runScenario(t *testing.T, name string) {
	want, ok := expectations[name]
	if !ok {
		t.Fatalf("no expectation for %s", name)
	}
	if slices.Equal(want.k8sDead, want.pwDead) {
		t.Fatalf("%s: the k8s and podwarden outcomes are the same, so the scenario cannot tell whether the agent worked", name)
	}
	if !slices.Contains(env.suite.Plan, name) {
		t.Skipf("%s not in PWVM_SCENARIOS", name)
	}
	runs := map[Mode]*Run{}
	for _, mode := range []Mode{ModeK8s, ModePodwarden} {
		t.Run(string(mode), func(t *testing.T) {
			v := row{scenario: name, mode: string(mode), verdict: "SKIP"}
			defer func() {
				if t.Failed() {
					v.verdict = "FAIL" + v.why()
				} else if !t.Skipped() {
					v.verdict = "pass"
				}
				record(v)
			}()
			if mode == ModePodwarden && env.noAgent != "" {
				v.killed = "-"
				v.survived = "agent not built yet"
			}
			b := bootFor(t, mode)
			r := b.Runs[name]
			if r == nil || !r.Complete {
				t.Fatalf("%s/%s: the guest did not finish the scenario (see the console file)", name, mode)
			}
			runs[mode] = r
			judgeScenario(t, name, mode, r, &v)
			if mode == ModeK8s {
				saveFixture(t, name, r)
			}
		})
	}
	if k, p := runs[ModeK8s], runs[ModePodwarden]; k != nil && p != nil && slices.Equal(k.Dead(), p.Dead()) {
		t.Errorf("%s: the k8s and podwarden runs lost the same processes %v", name, k.Dead())
	}
}

// judgeScenario asserts what one run of scenario name in mode must show:
// the dead the expectation names, every one of them in the kernel's kill
// lines, and in podwarden mode everything protected before the hog. The
// amd64 suite and the arm64 one (arm64_test.go) judge alike.
func judgeScenario(t *testing.T, name string, mode Mode, r *Run, v *row) {
	t.Helper()
	want := expectations[name]
	v.killed = list(r.Killed())
	v.survived = list(r.Survived())
	v.latency = latency(r, mode)
	logRun(t, r)
	dead := want.k8sDead
	if mode == ModePodwarden {
		dead = want.pwDead
		checkProtected(t, r, v)
	}
	if got := r.Dead(); !slices.Equal(got, dead) {
		v.reason("wrong victims")
		t.Errorf("%s/%s: dead %v, want %v", name, mode, got, dead)
	}
	// Every death must be the kernel's OOM killer, not a harness
	// accident: the kill lines name exactly the dead.
	killed := r.Killed()
	sort.Strings(killed)
	if !slices.Equal(killed, r.Dead()) {
		v.reason("deaths not in kernel log")
		t.Errorf("%s/%s: kernel log killed %v, but dead are %v", name, mode, killed, r.Dead())
	}
}

// checkProtected asserts the agent's writes happened before the hog ran:
// every oom.group the scenario read is 0 and every adj is 900.
func checkProtected(t *testing.T, r *Run, v *row) {
	t.Helper()
	var adjs int
	for k, val := range r.Checks {
		switch {
		case strings.HasPrefix(k, "oom.group "):
			if val != "0" {
				v.reason("oom.group not 0")
				t.Errorf("%s before the hog: %s, want 0", k, val)
			}
		case strings.HasPrefix(k, "adj "):
			adjs++
			if val != "900" {
				v.reason("adj not 900")
				t.Errorf("%s before the hog: %s, want 900", k, val)
			}
		}
	}
	if val := r.Checks["agent alive"]; val != "yes" {
		v.reason("agent exited")
		t.Errorf("the agent (run without --once) was not running at the end of the scenario: %q", val)
	}
	if adjs == 0 {
		v.reason("nothing checked")
		t.Errorf("no oom_score_adj was read before the hog: the run proves nothing")
	}
	for _, k := range []string{"adj-latency-ms", "oomgroup-latency-ms", "service-oomgroup-latency-ms",
		"startup-adj-latency-ms", "startup-oomgroup-latency-ms"} {
		if n := slices.IndexFunc(r.Metrics[k], func(ms int64) bool { return ms < 0 }); n >= 0 {
			v.reason("protect timeout")
			t.Errorf("%s: wait %d of %d ran out before the agent acted", k, n+1, len(r.Metrics[k]))
		}
	}
	// A hog that arrives with its container can fill memory in a second;
	// protection that lags by a full reconcile period is no protection.
	// The agent promises new processes and flags within --fast-interval
	// (2 s); the bound leaves TCG room on top.
	if maxMS := maxProtectMS(); maxMS > 0 {
		for _, k := range []string{"adj-latency-ms", "oomgroup-latency-ms"} {
			if ms := r.Metrics[k]; len(ms) > 0 && slices.Max(ms) > maxMS {
				v.reason("slow protection")
				t.Errorf("%s: %v, want every value <= %d ms (PWVM_MAX_PROTECT_MS)", k, ms, maxMS)
			}
		}
	}
}

// maxProtectMS is the steady-state protection bound; PWVM_MAX_PROTECT_MS
// overrides it, 0 turns the check off.
func maxProtectMS() int64 {
	if s := os.Getenv("PWVM_MAX_PROTECT_MS"); s != "" {
		if v, err := strconv.ParseInt(s, 10, 64); err == nil {
			return v
		}
	}
	return 5000
}

func logRun(t *testing.T, r *Run) {
	t.Helper()
	t.Logf("guest time %s; killed %v; survived %v", r.Duration, r.Killed(), r.Survived())
	for k, v := range r.Checks {
		t.Logf("check %s = %s", k, v)
	}
	for k, v := range r.Metrics {
		t.Logf("metric %s = %v", k, v)
	}
	for _, k := range r.Kills {
		t.Logf("kernel: %s", k.Record)
	}
	if t.Failed() || testing.Verbose() {
		for _, l := range r.AgentLog {
			t.Logf("agent: %s", l)
		}
	}
}

func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

// latency summarises how long the agent took to protect what appeared:
// the worst steady-state adj and oom.group latency the guest measured
// (10 ms steps), and the worst latency right after an agent start.
func latency(r *Run, mode Mode) string {
	worst := func(keys ...string) string {
		var ms []int64
		for _, k := range keys {
			ms = append(ms, r.Metrics[k]...)
		}
		switch {
		case len(ms) == 0:
			return "-"
		case slices.Min(ms) < 0:
			return "never"
		}
		return fmt.Sprint(slices.Max(ms))
	}
	// mode, not r.Mode: in a boot of cells (arm64) r.Mode is the boot's.
	if mode == ModeK8s {
		return "-"
	}
	return "adj<=" + worst("adj-latency-ms") + ",group<=" + worst("oomgroup-latency-ms") +
		",start<=" + worst("startup-adj-latency-ms", "startup-oomgroup-latency-ms")
}

// saveFixture keeps the raw kernel records of the two runs that reproduce
// the notes' experiments, for internal/oomreport's golden tests.
func saveFixture(t *testing.T, name string, r *Run) {
	t.Helper()
	if name != "container-limit" && name != "node-oom" {
		return
	}
	p := filepath.Join("testdata", "kmsg-6.1-"+name+".log")
	if _, err := os.Stat(p); err == nil && !*update {
		return
	}
	if err := os.WriteFile(p, []byte(strings.Join(r.Kmsg, "\n")+"\n"), 0o644); err != nil {
		t.Errorf("saving fixture: %v", err)
	}
}
