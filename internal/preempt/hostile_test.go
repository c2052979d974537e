package preempt

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"podwarden/internal/kubeevent"
	"podwarden/internal/policy"
)

// The hostile pods (issue 19) on fixture trees: whatever a pod
// does to itself, the engine ends what grew or nothing, never a bystander.

// notebookPod is jupyter() with a shell (104, child of the server) that
// the hostile processes are started from.
func notebookPod(f *fixture) string {
	nb, _ := jupyter(f)
	f.ppid[102], f.ppid[103], f.ppid[104] = 101, 102, 102
	f.process(nb, 101, 1, "tini", 1, "/usr/bin/tini", "--", "start.sh")
	f.process(nb, 102, 7, "jupyter-lab", 60, "/opt/conda/bin/python3.11", "/opt/conda/bin/jupyter-lab", "--ip=0.0.0.0")
	// The kernel from the issue: 120 MiB, flat.
	f.process(nb, 103, 40, "python3", 120, "/opt/conda/bin/python3", "-m", "ipykernel_launcher", "-f", "/tmp/k.json")
	f.process(nb, 104, 41, "bash", 4, "/bin/bash")
	f.usage(nb, 0, 190, 0)
	f.availMiB = 500
	f.run(4*time.Second, 0)
	return nb
}

// hogGrows grows pid in nb by stepMiB a second until something is
// signalled or it reaches maxMiB; the node's available memory falls with
// it, tasks stall once it is below 15%.
func hogGrows(f *fixture, nb string, pid, nspid int, comm string, stepMiB, maxMiB uint64, cmdline ...string) {
	base := f.availMiB
	for mib := stepMiB; mib <= maxMiB && len(f.sig.signals()) == 0; mib += stepMiB {
		f.process(nb, pid, nspid, comm, mib, cmdline...)
		f.usage(nb, 0, 190+mib, 0)
		f.availMiB = base - min(base-5, mib)
		stall := 0.0
		if f.availMiB < 150 {
			stall = 0.4
		}
		f.run(time.Second, stall)
	}
}

func refusals(f *fixture, scope kubeevent.Scope, reason string) float64 {
	return testutil.ToFloat64(f.engine().m.Refusals.WithLabelValues(scope.String(), reason))
}

func TestRenamedHogOnlyTheHogEnds(t *testing.T) {
	tests := []struct {
		name    string
		comm    string
		cmdline []string
	}{
		{"prctl jupyter-lab", "jupyter-lab", []string{"python3", "hog.py"}},
		{"prctl sshd", "sshd", []string{"python3", "hog.py"}},
		{"prctl systemd", "systemd", []string{"python3", "hog.py"}},
		{"exec -a sshd", "python3", []string{"sshd: ada [priv]", "hog.py"}},
		{"exec -a jupyter-lab", "python3", []string{"jupyter-lab", "hog.py"}},
		{"file named systemd", "systemd", []string{"/tmp/x/systemd", "--user"}},
		{"script named jupyter-lab", "python3", []string{"/usr/bin/python3", "/tmp/jupyter-lab"}},
		{"comm cut at 15", "jupyterhub-sing", []string{"jupyterhub-singleuser"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			nb := notebookPod(f)
			f.ppid[105] = 104
			f.sig.exitOn[105] = []string{"SIGINT"}
			hogGrows(f, nb, 105, 42, tc.comm, 40, 490, tc.cmdline...)
			f.run(2*time.Second, 0.4)
			if got := f.sig.signals(); !slices.Equal(got, []string{"105 SIGINT"}) {
				t.Fatalf("signals %v, want SIGINT to the hog (105) only", got)
			}
			rs := f.reports()
			if len(rs) != 1 || rs[0].PID != 105 || rs[0].Outcome != "" {
				t.Fatalf("reports %+v, want the kill of 105", rs)
			}
			if !strings.Contains(rs[0].Why, "(pid 105) grew") {
				t.Errorf("why %q does not say the hog grew", rs[0].Why)
			}
		})
	}
}

// TestInnerPidNamespaceHog: unshare --pid --fork makes the hog pid 1 of
// its own namespace; the container's init is still tini, and the hog
// ends.
func TestInnerPidNamespaceHog(t *testing.T) {
	f := newFixture(t)
	nb := notebookPod(f)
	f.ppid[105], f.ppid[106] = 104, 105
	f.process(nb, 105, 42, "unshare", 1, "unshare", "--pid", "--fork", "python3", "hog.py")
	f.run(2*time.Second, 0)
	f.sig.exitOn[106] = []string{"SIGINT"}
	hogGrows(f, nb, 106, 1, "python3", 40, 490, "python3", "hog.py")
	f.run(2*time.Second, 0.4)
	if got := f.sig.signals(); !slices.Equal(got, []string{"106 SIGINT"}) {
		t.Fatalf("signals %v, want SIGINT to the inner pid 1 (106) only", got)
	}
	if rs := f.reports(); len(rs) != 1 || rs[0].PID != 106 || strings.Contains(rs[0].Why, "container's init") {
		t.Errorf("reports %+v, want the kill of 106, not called the container's init", rs)
	}
}

// TestShmFillEndsNothing: /dev/shm is charged to the container until its
// files go: ending the server (the biggest process) would free nothing.
func TestShmFillEndsNothing(t *testing.T) {
	f := newFixture(t)
	nb := notebookPod(f)
	f.ppid[105] = 104
	for mib := uint64(40); mib <= 480; mib += 40 {
		f.shmem[105] = mib // dd into /dev/shm: resident as shmem, and its buffers grow a little
		f.process(nb, 105, 42, "dd", 1+mib/80, "dd", "if=/dev/zero", "of=/dev/shm/fill")
		f.cgShmem[nb] = mib
		f.usage(nb, 0, 190+mib, mib)
		f.availMiB = 500 - min(495, mib)
		stall := 0.0
		if f.availMiB < 150 {
			stall = 0.5
		}
		f.run(time.Second, stall)
	}
	f.run(5*time.Second, 0.5)
	if s := f.sig.signals(); len(s) != 0 {
		t.Fatalf("signals %v for a /dev/shm fill", s)
	}
	if n := refusals(f, kubeevent.ScopeNode, reasonShmem); n != 1 {
		t.Errorf("refusals{node,shmem} = %v, want 1 (once per cooldown)", n)
	}
	rs := f.reports()
	if len(rs) != 1 || rs[0].Outcome != kubeevent.OutcomeNotActed || !strings.Contains(rs[0].Why, "shmem or tmpfs") {
		t.Errorf("reports %+v, want one not-acted Event saying the growth is shmem", rs)
	}
	if msg := kubeevent.PressureMessage(rs[0]); !strings.Contains(msg, "podwarden ended nothing in container notebook") {
		t.Errorf("Event message %q", msg)
	}
}

// TestForkStormEndsTheFamilyOnce: make forking 40 MiB compilers, three a
// second. One kill of one child per cooldown cannot keep up; the family
// (make and every child) is stopped, so none is born while it is ended,
// then killed whole (no SIGINT, no SIGTERM: nothing in a make -j saves
// state, and every second of grace is three more children), counted once,
// its memory reaped, and the server, the kernel, the shell and the init
// live. A child make forks while the stop is on its way (a fork under way
// completes) is found and ended with it.
func TestForkStormEndsTheFamilyOnce(t *testing.T) {
	f := newFixture(t)
	nb := notebookPod(f)
	f.ppid[110] = 104
	f.process(nb, 110, 50, "make", 8, "make", "-j")
	f.run(2*time.Second, 0)
	used := uint64(198)
	next := 111
	fork := func() {
		f.ppid[next] = 110
		f.process(nb, next, next-60, "cc1", 40, "/usr/lib/gcc/x86_64-linux-gnu/12/cc1", "-quiet")
		next++
		used += 40
	}
	stop := f.sig.onSignal
	born := 0
	f.sig.onSignal = func(pid int, sig string) {
		stop(pid, sig)
		if pid == 110 && sig == "SIGSTOP" {
			fork() // its fork was under way when the stop came
			born = next - 1
		}
	}
	for range 120 {
		if len(f.sig.signals()) > 0 {
			break
		}
		fork() // three children a second, each a burst of 40 MiB
		f.usage(nb, 0, used, 0)
		f.availMiB = 500 - min(495, used-198)
		stall := 0.0
		if f.availMiB < 150 {
			stall = 0.5
		}
		f.run(300*time.Millisecond, stall)
	}
	if born == 0 {
		t.Fatalf("make was never stopped: signals %v", f.sig.signals())
	}
	sent := f.sig.signals()
	var stops, kills []int
	for _, s := range sent {
		var pid int
		var sig string
		fmt.Sscanf(s, "%d %s", &pid, &sig)
		if pid < 110 {
			t.Errorf("signal %q to a process outside the family", s)
		}
		switch sig {
		case "SIGSTOP":
			if len(kills) > 0 {
				t.Errorf("%q after the first SIGKILL: the family is stopped whole before it is killed", s)
			}
			stops = append(stops, pid)
		case "SIGKILL":
			kills = append(kills, pid)
		default:
			t.Errorf("%q: a family gets no ladder", s)
		}
	}
	family := make([]int, 0, next-110)
	for pid := 110; pid < next; pid++ {
		family = append(family, pid)
	}
	if len(stops) == 0 || stops[0] != 110 {
		t.Errorf("stops %v, want make (110) first", stops)
	}
	slices.Sort(stops)
	slices.Sort(kills)
	if !slices.Equal(stops, family) || !slices.Equal(kills, family) {
		t.Errorf("stopped %v, killed %v; want make, its children and the one born during the stop (%d): %v", stops, kills, born, family)
	}
	// The family's line says what fired it: a fixture has no trigger, so
	// the poll, and available memory falling too fast to wait.
	if logs := f.logs.String(); !strings.Contains(logs, `msg="family stopped"`) ||
		!regexp.MustCompile(`msg="family stopped" .*fired_by="poll \(no psi trigger\); (fast fall|fast drop|psi): `).MatchString(logs) {
		t.Errorf("family line without what fired it:\n%s", logs)
	}
	mrel := slices.Sorted(slices.Values(f.sig.mrel))
	if !slices.Equal(mrel, family) {
		t.Errorf("process_mrelease on %v, want every member %v", mrel, family)
	}
	f.availMiB = 480
	f.usage(nb, 0, 190, 0)
	f.run(15*time.Second, 0)
	m := f.engine().m
	if n := testutil.ToFloat64(m.Kills.WithLabelValues("ns", "nb", "notebook", kubeevent.ScopeNode.String(), "SIGKILL")); n != 1 {
		t.Errorf("kills = %v, want 1: the family is one kill", n)
	}
	if n := testutil.CollectAndCount(m.LadderStops); n != 0 {
		t.Errorf("%d ladder stops for a family", n)
	}
	rs := f.reports()
	if len(rs) != 1 || rs[0].PID != 110 || !strings.Contains(rs[0].Why, "the family of make (pid 110)") ||
		!strings.Contains(rs[0].Why, "1 more born while it was being stopped") || !slices.Equal(rs[0].Signals, []string{"SIGSTOP", "SIGKILL"}) {
		t.Errorf("reports %+v, want one naming make's family, the child born during the stop, SIGSTOP then SIGKILL", rs)
	}
}

// TestFlatHolderBesideChurnEndsNothing (issue 19, item 4): a pod loads
// 700 MiB and holds it flat; another reads files over and over. The node
// dips under minAvailable with stalls; nothing grew lately, so nothing is
// ended, and the refusal is counted.
func TestFlatHolderBesideChurnEndsNothing(t *testing.T) {
	f := newFixture(t)
	f.totalMiB, f.availMiB = 1000, 900
	hold := f.container("hold", "data", 0, 10, 0)
	f.process(hold, 300, 1, "tini", 1, "tini")
	f.ppid[301] = 300
	f.process(hold, 301, 7, "python3", 10, "python3", "load.py")
	churn := f.container("etl", "reader", 0, 20, 0)
	f.process(churn, 401, 1, "cat", 2, "cat")
	f.run(3*time.Second, 0)
	for mib := uint64(100); mib <= 700; mib += 100 { // its start: 7 s
		f.process(hold, 301, 7, "python3", mib, "python3", "load.py")
		f.usage(hold, 0, mib+10, 0)
		f.availMiB = 900 - mib
		f.run(time.Second, 0)
	}
	f.run(12*time.Second, 0) // flat since
	// Page cache churn: the reader's cache comes and goes, MemAvailable
	// dips to 9.8%, tasks stall on refaults.
	for i := range 20 {
		cache := uint64(80 + 10*(i%3))
		f.usage(churn, 0, 20+cache, cache)
		f.availMiB = 98
		f.run(time.Second, 0.6)
	}
	if s := f.sig.signals(); len(s) != 0 {
		t.Fatalf("signals %v: the holder has been flat for 12 s", s)
	}
	if n := refusals(f, kubeevent.ScopeNode, reasonNoGrowth); n < 1 {
		t.Errorf("refusals{node,no_growth} = %v, want at least 1", n)
	}
	if !strings.Contains(f.logs.String(), "no kill could help") {
		t.Errorf("no log line saying why nothing was done:\n%s", f.logs)
	}
}

// TestPressureFromOutsideTargets (issue 19, item 5): MemAvailable falls
// with no target growing (a host process): no target is ended.
func TestPressureFromOutsideTargets(t *testing.T) {
	f := newFixture(t)
	a := f.container("a", "nb", 0, 170, 0)
	f.process(a, 200, 1, "tini", 1, "tini")
	f.ppid[201] = 200
	f.process(a, 201, 7, "python3", 164, "python3", "-m", "ipykernel_launcher")
	b := f.container("b", "nb", 0, 120, 0)
	f.process(b, 300, 1, "tini", 1, "tini")
	f.ppid[301] = 300
	f.process(b, 301, 7, "python3", 114, "python3", "-m", "ipykernel_launcher")
	f.run(3*time.Second, 0)
	for avail := uint64(600); avail >= 40; avail -= 40 {
		f.availMiB = avail
		f.run(time.Second, 0.5)
	}
	f.run(30*time.Second, 0.5)
	if s := f.sig.signals(); len(s) != 0 {
		t.Fatalf("signals %v for pressure from outside every target", s)
	}
	if rs := f.reports(); len(rs) != 0 {
		t.Errorf("reports %+v: no pod caused it", rs)
	}
	// Once per cooldown over 30 s and more: 3 or 4, not one a tick.
	if n := refusals(f, kubeevent.ScopeNode, reasonNoGrowth); n < 2 || n > 5 {
		t.Errorf("refusals{node,no_growth} = %v, want one per cooldown", n)
	}
	if !strings.Contains(f.logs.String(), "the shortage comes from outside the targets") {
		t.Errorf("the log does not say where the pressure is:\n%s", f.logs)
	}
}

// TestKillTooSmall: a pod grows a little while the node is short for
// other reasons: ending it would not bring the node back, so nothing is
// ended.
func TestKillTooSmall(t *testing.T) {
	f := newFixture(t)
	c := f.container("small", "app", 0, 20, 0)
	f.process(c, 200, 1, "tini", 1, "tini")
	f.ppid[201] = 200
	f.process(c, 201, 7, "app", 15, "/app")
	f.run(3*time.Second, 0)
	for i := uint64(1); i <= 8; i++ {
		f.process(c, 201, 7, "app", 15+5*i, "/app")
		f.usage(c, 0, 20+5*i, 0)
		f.availMiB = 600 - 70*i // mostly a host process
		f.run(time.Second, 0.5)
	}
	if s := f.sig.signals(); len(s) != 0 {
		t.Fatalf("signals %v: ending the app (55 MiB) would leave the node under minAvailable", s)
	}
	if n := refusals(f, kubeevent.ScopeNode, reasonTooSmall); n != 1 {
		t.Errorf("refusals{node,kill_too_small} = %v, want 1", n)
	}
	rs := f.reports()
	if len(rs) != 1 || rs[0].Outcome != kubeevent.OutcomeNotActed || !strings.Contains(rs[0].Why, "needs to be out of danger") {
		t.Errorf("reports %+v", rs)
	}
}

// TestHogOnAFullNodeEnds: most of the node is held flat by another pod and
// a hog grows into the rest. Ending the hog takes the node out of danger
// though not back above releaseAvailable; refusing would leave it to the
// kernel, which kills the biggest process: the flat holder.
func TestHogOnAFullNodeEnds(t *testing.T) {
	f := newFixture(t)
	hold := f.container("hold", "data", 0, 700, 0)
	f.process(hold, 201, 1, "python3", 700, "python3", "load.py")
	nb := notebookPod(f)
	f.availMiB = 1000 - 700 - 190 // 110 MiB: above minAvailable (100)
	f.run(3*time.Second, 0)
	f.sig.exitOn[105] = []string{"SIGINT"}
	f.ppid[105] = 104
	for mib := uint64(10); mib <= 100 && len(f.sig.signals()) == 0; mib += 10 {
		f.process(nb, 105, 42, "python3", mib, "python3", "hog.py")
		f.usage(nb, 0, 190+mib, 0)
		f.availMiB = 110 - mib
		f.run(time.Second, 0.4)
	}
	// Ending the hog gives back what it took: 110 MiB available, above
	// minAvailable, under releaseAvailable (200).
	if got := f.sig.signals(); len(got) == 0 || got[0] != "105 SIGINT" {
		t.Fatalf("signals %v, want SIGINT to the hog (105)", got)
	}
	for _, s := range f.sig.signals() {
		if strings.HasPrefix(s, "201 ") {
			t.Errorf("signal %q to the flat holder", s)
		}
	}
}

// TestBigNodeDefaults (issue 19, item 6): on a 512 GiB node the defaults
// do nothing at 40 GiB free, however hard tasks stall and whatever grows;
// percentages alone (the old defaults) acted there.
func TestBigNodeDefaults(t *testing.T) {
	for name, tc := range map[string]struct {
		th   policy.Thresholds
		want bool
	}{
		"defaults":         {policy.DefaultNodeThresholds, false},
		"percentages only": {policy.Thresholds{MinAvailable: 10, CriticalAvailable: 4, ReleaseAvailable: 20}, true},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.pol.Node = tc.th
			f.totalMiB, f.availMiB = 512<<10, 200<<10
			c := f.container("train", "job", 0, 1<<10, 0)
			f.process(c, 200, 1, "tini", 1, "tini")
			f.ppid[201] = 200
			f.process(c, 201, 7, "python3", 1<<10, "python3", "train.py")
			f.run(3*time.Second, 0)
			for gib := uint64(10); gib <= 160; gib += 10 {
				f.process(c, 201, 7, "python3", (1+gib)<<10, "python3", "train.py")
				f.usage(c, 0, (1+gib)<<10, 0)
				f.availMiB = (200 - gib) << 10
				f.run(time.Second, 0.9)
			}
			if got := f.engine().nodeH.avail >> 30; got != 40 {
				t.Fatalf("fixture: %d GiB available, want 40", got)
			}
			if acted := len(f.sig.signals()) > 0; acted != tc.want {
				t.Errorf("acted %v with 40 GiB of 512 free, want %v (signals %v)", acted, tc.want, f.sig.signals())
			}
		})
	}
}

// TestLoadStoppedAtTheLine: a pod loads a dataset at 40 MiB/s (a starved
// node makes a load that slow; the pressure suite's cache-65-late saw one
// take 15 s) and stops where the fall, had it gone on, would reach
// criticalAvailable within two windows. The sample that first shows the
// danger is the last of the load: it only arms the engine, and the load
// is held from then on, so nothing is ended. The same load going on one
// sample longer is a hog and is ended.
func TestLoadStoppedAtTheLine(t *testing.T) {
	for name, tc := range map[string]struct {
		stopAt uint64 // available MiB where the load stops
		want   []string
	}{
		"stops at the line": {stopAt: 118, want: nil},
		"goes on":           {stopAt: 110, want: []string{"301 SIGINT"}},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			hold := f.container("hold", "data", 0, 10, 0)
			f.process(hold, 300, 1, "tini", 1, "tini")
			f.ppid[301] = 300
			f.process(hold, 301, 7, "python3", 10, "python3", "load.py")
			f.sig.exitOn[301] = []string{"SIGINT"}
			f.availMiB = 598
			f.run(10*time.Second, 0)
			// 4 MiB every 100 ms from 598 available: at 118 the fall (40
			// MiB in the window) first reaches critical (40) within two
			// windows.
			armed := false
			for mib := uint64(4); 598-mib >= tc.stopAt && len(f.sig.signals()) == 0; mib += 4 {
				f.process(hold, 301, 7, "python3", 10+mib, "python3", "load.py")
				f.usage(hold, 0, 10+mib, 0)
				f.availMiB = 598 - mib
				f.tick(100*time.Millisecond, 0)
				if e := f.engine(); e.nodeH.pending {
					armed = true
					// The confirming sample comes half a tick later.
					if d := e.sleep(); d != tick/2 {
						t.Errorf("sleep %v after a fall first judged danger, want %v", d, tick/2)
					}
				}
			}
			f.run(20*time.Second, 0)
			if !armed {
				t.Error("the fall was never judged danger: the fixture does not reach the line")
			}
			if got := f.sig.signals(); !slices.Equal(got, tc.want) {
				t.Errorf("signals %v, want %v", got, tc.want)
			}
		})
	}
}
