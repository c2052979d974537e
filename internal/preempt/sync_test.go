package preempt

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"podwarden/internal/cgroup"
	"podwarden/internal/policy"
	"podwarden/internal/procfs"
)

// TestTargetsTakenOnlyWhenPublished (issue 23): the engine asks for the
// targets at every step (up to ten a second) but takes them only from a
// new snapshot. A step with the same one does no work per target: it
// allocates nothing, and a set handed out under the old generation is not
// even looked at. A new one (a decision changed, a target added or
// removed) is acted on at the next step. A container trigger that was
// closed under an unchanged snapshot is armed again at the next step, as
// before. The triggers are real where the kernel has PSI: the fixture's
// memory.pressure files are links to /proc/pressure/memory, which takes
// them (this host's own cgroups are v1, without memory.pressure).
func TestTargetsTakenOnlyWhenPublished(t *testing.T) {
	f := newFixture(t)
	a := f.container("a", "nb", 0, 100, 0)
	b := f.container("b", "nb", 0, 100, 0)
	_, err := os.Stat("/proc/pressure/memory")
	psi := err == nil
	if psi {
		f.link(f.cg+a+"/memory.pressure", "/proc/pressure/memory")
		f.link(f.cg+b+"/memory.pressure", "/proc/pressure/memory")
	} else {
		t.Log("no PSI on this kernel: triggers not checked")
	}
	ta, tb := f.targets[0], f.targets[1]
	// What a process without CAP_SYS_RESOURCE may arm (the engine widens
	// its window so when it arms the node's trigger, which this test does
	// not).
	f.pol.Pressure = policy.PSITrigger{Stall: 200 * time.Millisecond, Window: cgroup.UnprivilegedWindow}
	e := f.engine()
	e.cgTriggers = psi
	defer e.closeAll()
	var ts []Target
	var gen uint64
	e.cfg.Targets = func() ([]Target, uint64) { return ts, gen }

	check := func(when string, want ...string) {
		t.Helper()
		if got := slices.Sorted(maps.Keys(e.targets)); !slices.Equal(got, want) {
			t.Fatalf("%s: targets %q, want %q", when, got, want)
		}
		if !psi {
			return
		}
		for _, cg := range want {
			if e.targets[cg].trig == nil {
				t.Errorf("%s: %s has no trigger", when, cg)
			}
		}
		if n := testutil.ToFloat64(e.m.Triggers); n != float64(len(want)) {
			t.Errorf("%s: podwarden_preempt_psi_triggers %v, want %d", when, n, len(want))
		}
	}

	ts, gen = []Target{ta}, 1
	f.tick(100*time.Millisecond, 0)
	check("first snapshot", a)

	// The same generation with another set: not looked at.
	ts = []Target{ta, tb}
	f.tick(100*time.Millisecond, 0)
	check("same generation", a)
	if n := testing.AllocsPerRun(100, e.syncTargets); n != 0 {
		t.Errorf("a sync with the same snapshot allocates %v times, want none", n)
	}

	if psi {
		e.disarm(a) // as the loop does when the trigger reports its cgroup removed
		f.tick(100*time.Millisecond, 0)
		check("trigger closed, same snapshot", a)

		// Its cgroup seen gone, then back (the agent's snapshot did not
		// change meanwhile).
		dir := f.cg + a
		must(t, os.Rename(dir, dir+".away"))
		f.tick(fullEvery, 0)
		if st := e.targets[a]; !st.gone || st.trig != nil {
			t.Fatalf("cgroup gone: gone %v, trigger %v", st.gone, st.trig)
		}
		must(t, os.Rename(dir+".away", dir))
		f.tick(fullEvery, 0) // seen back
		f.tick(100*time.Millisecond, 0)
		check("cgroup back, same snapshot", a)
	}

	off := ta
	off.Preempt.Mode = policy.PreemptOff
	ts, gen = []Target{off, tb}, 2
	f.tick(100*time.Millisecond, 0)
	check("target added", a, b)
	if m := e.targets[a].t.Preempt.Mode; m != policy.PreemptOff {
		t.Errorf("decision changed to off in a new snapshot: engine has %q", m)
	}

	ts, gen = []Target{tb}, 3
	f.tick(100*time.Millisecond, 0)
	check("target removed", b)
}

// BenchmarkSyncTargets is the engine's look at the agent's targets at
// every step, 200 targets: with the same snapshot (what most steps see)
// and with a new one each step (what every step cost before issue 23).
func BenchmarkSyncTargets(b *testing.B) {
	for _, same := range []bool{true, false} {
		name := "new snapshot"
		if same {
			name = "same snapshot"
		}
		b.Run(name, func(b *testing.B) {
			var ts []Target
			for i := range 200 {
				ts = append(ts, Target{})
				ts[i].Cgroup = fmt.Sprintf("/kubepods/pod%d/c", i)
				ts[i].Namespace, ts[i].PodName = "users", fmt.Sprintf("nb-%d", i)
			}
			var gen uint64 = 1
			pfs, err := procfs.NewFS("/proc")
			if err != nil {
				b.Fatal(err)
			}
			// No cgroup tree: no triggers, the sync alone.
			e, err := New(Config{Policy: policy.DefaultPreempt(), Proc: pfs, Cgroups: cgroup.FS{},
				Targets: func() ([]Target, uint64) { return ts, gen }})
			if err != nil {
				b.Fatal(err)
			}
			e.syncTargets()
			b.ReportAllocs()
			for b.Loop() {
				if !same {
					gen++
				}
				e.syncTargets()
			}
		})
	}
}
