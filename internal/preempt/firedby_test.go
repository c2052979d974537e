package preempt

import (
	"strings"
	"testing"
	"time"
)

// TestFiredBy: the kill's log line (fired_by=) and its Event (the end of
// its why) say what fired the episode: the PSI trigger and its file, or
// the engine's own poll, and the rule that found the danger. The fixture's
// files are not PSI files, so a trigger that fires is recorded as Run
// records one (noteFired); the node trigger itself is armed by armNode on
// the fixture's pressure file (a regular file takes the write).
func TestFiredBy(t *testing.T) {
	// growNode grows the notebook kernel by step MiB a second, a tenth
	// of it every 100 ms, until the engine signals, with stall (0..1) once
	// less than 150 MiB is available; fire notes the node trigger's
	// wake-up on stalled ticks.
	growNode := func(step uint64, stall float64, fire bool) func(f *fixture) {
		return func(f *fixture) {
			nb, _ := jupyter(f)
			f.sig.exitOn[103] = []string{"SIGINT"}
			for i := uint64(0); 30+step*i/10 <= 590 && len(f.sig.signals()) == 0; i++ {
				grow(f, nb, 30+step*i/10)
				s := 0.0
				if f.availMiB < 150 {
					s = stall
					if fire {
						f.engine().noteFired(nodeKey, f.now.Add(100*time.Millisecond))
					}
				}
				f.tick(100*time.Millisecond, s)
			}
		}
	}
	tests := []struct {
		name  string
		psi   bool
		arm   bool // the node trigger is armed
		run   func(f *fixture)
		fired string // fired_by's start, with PROC and CG for the roots
	}{{
		name: "node trigger, stall", psi: true, arm: true, run: growNode(20, 0.3, true),
		fired: "psi trigger on PROC/pressure/memory; psi: available 98.0 MiB below minAvailable 100.0 MiB, tasks stalled 30% of the window (bar 10%)",
	}, {
		name: "poll, trigger silent", psi: true, arm: true, run: growNode(20, 0.3, false),
		fired: "poll (psi trigger on PROC/pressure/memory silent); psi: available 98.0 MiB below minAvailable 100.0 MiB",
	}, {
		name: "poll, no PSI, fast drop", run: growNode(20, 0, false),
		fired: "poll (no psi trigger); fast drop: available 96.0 MiB below minAvailable 100.0 MiB, fell 20.0 MiB in the last window (1% of the total counts as pressure)",
	}, {
		name: "poll, no PSI, slow fall", run: growNode(5, 0, false),
		fired: "poll (no psi trigger); falling without psi: available 98.0 MiB below minAvailable 100.0 MiB, fell 5.0 MiB in the last window",
	}, {
		name: "fast fall above minAvailable", psi: true, arm: true, run: growNode(60, 0, false),
		fired: "poll (psi trigger on PROC/pressure/memory silent); fast fall: available 150.0 MiB fell 60.0 MiB in the last window, criticalAvailable 40.0 MiB within 2 windows at that pace",
	}, {
		name: "critical at once", psi: true, run: func(f *fixture) {
			nb, _ := jupyter(f)
			f.sig.exitOn[103] = []string{"SIGINT"}
			f.run(3*time.Second, 0)
			grow(f, nb, 595)
			f.tick(100*time.Millisecond, 0)
		},
		fired: "poll (no psi trigger); critical: available 35.0 MiB below criticalAvailable 40.0 MiB",
	}, {
		name: "container trigger", psi: true, run: func(f *fixture) {
			c := f.container("batch", "train", 256, 100, 0)
			f.process(c, 301, 1, "sh", 1, "/bin/sh", "-c", "python train.py")
			f.process(c, 302, 5, "python", 40, "python", "train.py")
			f.engine().cgTriggers = true // the fixture's memory.pressure takes the write
			f.run(time.Second, 0)
			f.sig.exitOn[302] = []string{"SIGINT"}
			f.process(c, 302, 5, "python", 240, "python", "train.py")
			for range 3 {
				f.engine().noteFired(c, f.now.Add(time.Second))
				f.pressAtLimit(c, 1, 250, 2)
			}
		},
		fired: "psi trigger on CG/kubepods/podbatch/train/memory.pressure; psi: available 8.0 MiB below minAvailable 12.8 MiB, tasks stalled 30% of the window (bar 10%)",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.psi = tc.psi
			f.writeNode()
			e := f.engine()
			if tc.arm {
				e.armNode()
				if e.nodeTrig == nil {
					t.Fatalf("node trigger not armed on the fixture: %v", e.nodeTrigErr)
				}
			}
			defer e.closeAll()
			tc.run(f)
			f.tick(100*time.Millisecond, 0) // the victim's exit is seen
			rel := strings.NewReplacer(f.proc, "PROC", f.cg, "CG").Replace
			var line string
			for _, l := range strings.Split(f.logs.String(), "\n") {
				if strings.Contains(l, `msg="ended process under memory pressure"`) {
					line = rel(l)
				}
			}
			if !strings.Contains(line, `fired_by="`+tc.fired) {
				t.Errorf("kill line lacks fired_by=%q:\n%s\nsignals %v; log:\n%s", tc.fired, line, f.sig.signals(), rel(f.logs.String()))
			}
			rs := f.reports()
			if len(rs) != 1 || !strings.Contains(rel(rs[0].Why), "; fired by "+tc.fired) {
				t.Errorf("Event why lacks %q: %+v", tc.fired, rs)
			}
		})
	}
}
