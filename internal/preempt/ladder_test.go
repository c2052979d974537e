package preempt

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"podwarden/internal/kubeevent"
)

// TestSIGINTSavesTheSession: a notebook kernel grows until it is sent
// SIGINT; what it does then decides whether the ladder goes on. A kernel
// that raises KeyboardInterrupt and drops what the cell built has given
// its memory back: the ladder stops at SIGINT, it lives with its session,
// and the stop is counted by signal, whether or not the node is out of
// danger (the rest of the shortage is not its doing). A kernel that keeps
// its memory gets SIGTERM. A process that frees on SIGINT and grows again
// within the cooldown is not given SIGINT again: it cannot dodge the
// ladder one SIGINT at a time.
func TestSIGINTSavesTheSession(t *testing.T) {
	for _, tc := range []struct {
		name string
		// after SIGINT: the kernel's private MiB, the node's available
		// MiB and stall, for 5 s
		kernelMiB, availMiB uint64
		stall               float64
		// regrow: the kernel grows again right after
		regrow    bool
		want      []string
		wantStops float64
		wantLog   string
	}{
		{
			name: "memory back on the node", kernelMiB: 35, availMiB: 560,
			want: []string{"103 SIGINT"}, wantStops: 1, wantLog: "victim left alive",
		},
		{
			// The old engine sent SIGTERM here after the 2 s grace: the
			// node was still in danger, though the kernel had freed all.
			name: "kernel freed, node still short", kernelMiB: 35, availMiB: 45, stall: 0.4,
			want: []string{"103 SIGINT"}, wantStops: 1, wantLog: "victim gave its memory back after the signal",
		},
		{
			name: "kernel keeps its memory", kernelMiB: 540, availMiB: 45, stall: 0.4,
			want: []string{"103 SIGINT", "103 SIGTERM"},
		},
		{
			name: "frees, then grows again", kernelMiB: 35, availMiB: 560, regrow: true,
			want: []string{"103 SIGINT", "103 SIGTERM"}, wantStops: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			nb, _ := jupyter(f)
			f.sig.exitOn[103] = []string{"SIGTERM"}
			kernelUntilSignal(f, nb, 20)
			if got := f.sig.signals(); !slices.Equal(got, []string{"103 SIGINT"}) {
				t.Fatalf("first signals %v, want SIGINT to the kernel (103)", got)
			}
			f.process(nb, 103, 40, "python3", tc.kernelMiB, "/opt/conda/bin/python3", "-m", "ipykernel_launcher", "-f", "/tmp/k.json")
			f.usage(nb, 0, 61+tc.kernelMiB, 0)
			f.availMiB = tc.availMiB
			f.run(5*time.Second, tc.stall)
			if tc.regrow {
				// Back from 35 MiB to where it was chosen: its growth in
				// the recent window is new evidence.
				f.availMiB = 600
				f.process(nb, 103, 40, "python3", 35, "/opt/conda/bin/python3", "-m", "ipykernel_launcher", "-f", "/tmp/k.json")
				f.usage(nb, 0, 96, 0)
				f.run(time.Second, 0)
				kernelUntilSignal(f, nb, 50)
				f.run(time.Second, 0.4)
			}
			if got := f.sig.signals(); !slices.Equal(got, tc.want) {
				t.Errorf("signals %v, want %v", got, tc.want)
			}
			if n := testutil.ToFloat64(f.engine().m.LadderStops.WithLabelValues(kubeevent.ScopeNode.String(), "SIGINT")); n != tc.wantStops {
				t.Errorf("ladder stops at SIGINT = %v, want %v", n, tc.wantStops)
			}
			if tc.wantLog != "" && !strings.Contains(f.logs.String(), tc.wantLog) {
				t.Errorf("log lacks %q:\n%s", tc.wantLog, f.logs)
			}
		})
	}
}

// kernelUntilSignal grows the notebook kernel (103) stepMiB a second from
// 30 MiB to 580, the node's available memory falling with it, until a
// signal is sent.
func kernelUntilSignal(f *fixture, nb string, stepMiB uint64) {
	f.t.Helper()
	n := len(f.sig.signals())
	for i := range uint64(60) {
		if len(f.sig.signals()) > n {
			return
		}
		grow(f, nb, min(30+i*stepMiB, 580))
		stall := 0.0
		if f.availMiB < 150 {
			stall = 0.3
		}
		f.tick(time.Second, stall)
	}
}
