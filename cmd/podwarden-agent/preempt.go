package main

import (
	"context"
	"log/slog"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"

	"podwarden/internal/agent"
	"podwarden/internal/cgroup"
	"podwarden/internal/policy"
	"podwarden/internal/preempt"
	"podwarden/internal/procfs"
)

// startPreempt runs the pressure engine beside the agent, on its own
// goroutine, fed with the agent's target snapshot. It returns at once; the
// engine stops with ctx.
func startPreempt(ctx context.Context, pol policy.Preempt, a *agent.Agent, pfs procfs.FS, cfs cgroup.FS,
	rep preempt.Reporter, reg prometheus.Registerer, log *slog.Logger) error {
	// A goroutine stuck in a page fault (direct reclaim on a thrashing
	// node) keeps its P until the fault ends: with one P the engine waits
	// behind it, whatever its thread's priority. In a one-CPU guest under a
	// fork storm on a busy host the choice took 36 s with one P, 0.5 s with
	// two.
	if runtime.GOMAXPROCS(0) < 2 {
		runtime.GOMAXPROCS(2)
	}
	e, err := preempt.New(preempt.Config{
		Policy: pol, Proc: pfs, Cgroups: cfs, Reporter: rep, Log: log,
		Metrics: preempt.NewMetrics(reg), LockMemory: true,
		Targets: (&preemptFeed{src: a.TargetSnapshot}).targets,
	})
	if err != nil {
		return err
	}
	go func() {
		if err := e.Run(ctx); err != nil {
			log.Error("preempt engine stopped", "err", err)
		}
	}()
	return nil
}

// preemptFeed hands the engine the agent's targets, converted once per
// snapshot the agent publishes: the engine asks at every step (up to ten
// times a second), the set changes when containers come and go. Only the
// engine's goroutine calls targets, so the feed needs no lock; the
// snapshot itself is the agent's atomic pointer.
type preemptFeed struct {
	src func() ([]agent.Target, uint64)
	gen uint64
	ts  []preempt.Target
}

func (f *preemptFeed) targets() ([]preempt.Target, uint64) {
	ts, gen := f.src()
	if gen != f.gen || f.ts == nil {
		f.ts, f.gen = preemptTargets(ts), gen
	}
	return f.ts, f.gen
}

// preemptTargets is the narrow view the engine gets of the agent's targets.
func preemptTargets(ts []agent.Target) []preempt.Target {
	out := make([]preempt.Target, 0, len(ts))
	for _, t := range ts {
		out = append(out, preempt.Target{Ref: t.Ref, Preempt: t.Decision.Preempt})
	}
	return out
}
