package preempt

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"podwarden/internal/kubeevent"
	"podwarden/internal/syncbuf"
	"podwarden/internal/target"
)

// outboxRecorder stands in for kubeevent.Reporter, which has its own tests
// against an API server: it records the pod and Node Events handed to it.
type outboxRecorder struct {
	mu         sync.Mutex
	pods, node []kubeevent.PressureKill
}

func (o *outboxRecorder) PodPressureKill(_ context.Context, k kubeevent.PressureKill) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pods = append(o.pods, k)
	return nil
}

func (o *outboxRecorder) NodePressure(_ context.Context, k kubeevent.PressureKill) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.node = append(o.node, k)
	return nil
}

// podsOnly is a Reporter that cannot post on the Node.
type podsOnly struct{ o *outboxRecorder }

func (p podsOnly) PodPressureKill(ctx context.Context, k kubeevent.PressureKill) error {
	return p.o.PodPressureKill(ctx, k)
}

// TestTellRefusal: a refusal at node scope is told on the Node (issue 19),
// through the same outbox as the pods' Events, with or without a culprit
// pod; at container scope only the pod hears of it. The log line stays.
func TestTellRefusal(t *testing.T) {
	nb := Target{Ref: target.Ref{Cgroup: "/kubepods/podu/c1", PodUID: "u", Namespace: "users", PodName: "nb-0", Container: "notebook"}}
	for name, tc := range map[string]struct {
		scope        kubeevent.Scope
		target       Target
		nodeReporter bool
		wantPods     int
		wantNode     bool
		wantLog      string
	}{
		"node, no culprit":        {kubeevent.ScopeNode, Target{}, true, 0, true, "memory short but no kill could help"},
		"node, shmem culprit":     {kubeevent.ScopeNode, nb, true, 1, true, "memory short but no kill could help"},
		"container":               {kubeevent.ScopeContainer, nb, true, 1, false, "memory short but no kill could help"},
		"reporter without a Node": {kubeevent.ScopeNode, Target{}, false, 0, false, "memory short but no kill could help"},
	} {
		t.Run(name, func(t *testing.T) {
			rec := &outboxRecorder{}
			var rep Reporter = rec
			if !tc.nodeReporter {
				rep = podsOnly{rec}
			}
			logs := &syncbuf.Buffer{}
			e := &Engine{cfg: Config{Reporter: rep}, log: slog.New(slog.NewTextHandler(logs, nil)), m: NewMetrics(nil),
				reports: make(chan report, reportQueue)}
			ep := &episode{key: nodeKey, scope: tc.scope, target: tc.target, why: "no_growth: nothing grew",
				at: health{avail: 6 << 20, total: 100 << 20, stall: -1}}
			e.tellRefusal(ep, "no_growth")

			if len(rec.pods) != tc.wantPods {
				t.Errorf("pod Events %+v, want %d", rec.pods, tc.wantPods)
			}
			if got := len(rec.node) == 1; got != tc.wantNode || len(rec.node) > 1 {
				t.Fatalf("node Events %+v, want one: %v", rec.node, tc.wantNode)
			}
			if tc.wantNode {
				k := rec.node[0]
				want := kubeevent.PressureKill{PodUID: tc.target.PodUID, Namespace: tc.target.Namespace, PodName: tc.target.PodName,
					Container: tc.target.Container, Scope: kubeevent.ScopeNode, Available: 6 << 20, Total: 100 << 20, StallPct: -1,
					Why: "no_growth: nothing grew; fired by poll (no psi trigger); not in danger", Outcome: kubeevent.OutcomeNotActed}
				if k.Why != want.Why || k.Outcome != want.Outcome || k.StallPct != want.StallPct || k.Available != want.Available ||
					k.Container != want.Container || k.Scope != want.Scope {
					t.Errorf("node Event %+v, want %+v", k, want)
				}
			}
			if !strings.Contains(logs.String(), tc.wantLog) || !strings.Contains(logs.String(), "no_growth") || !strings.Contains(logs.String(), "fired_by=") {
				t.Errorf("log %q", logs)
			}
		})
	}
}
