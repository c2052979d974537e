package preempt

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"podwarden/internal/kubeevent"
)

// Reporter posts the engine's actions as Kubernetes Events
// (*kubeevent.Reporter). It may wait on the API server: the engine calls
// it only from its report goroutine.
type Reporter interface {
	PodPressureKill(ctx context.Context, k kubeevent.PressureKill) error
}

// report is one action to tell the user about, off the protection path.
type report struct {
	k kubeevent.PressureKill
	// root is a process of the container that lives on (its init or a
	// kept process): the message file is written through its
	// /proc/PID/root, if it is still that process. Zero when there is
	// none.
	root procRef
}

const (
	reportQueue   = 64
	reportTimeout = 10 * time.Second
)

// reportLoop writes Events and message files until ctx ends.
func (e *Engine) reportLoop(ctx context.Context, q <-chan report) {
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-q:
			e.deliver(ctx, r)
		}
	}
}

func (e *Engine) deliver(ctx context.Context, r report) {
	if e.cfg.Reporter != nil && r.k.PodName != "" {
		rctx, cancel := context.WithTimeout(ctx, reportTimeout)
		err := e.cfg.Reporter.PodPressureKill(rctx, r.k)
		cancel()
		if err != nil && ctx.Err() == nil {
			e.log.Warn("pressure event not posted", "pod", r.k.Namespace+"/"+r.k.PodName, "err", err)
		}
	}
	// Kills only: a dry run writes nothing into containers.
	if e.cfg.Policy.MessageFile != "" && r.root.pid > 0 && r.k.Outcome == "" {
		msg := time.Now().UTC().Format(time.RFC3339) + " " + kubeevent.PressureMessage(r.k) + "\n"
		if err := writeMessage(e.cfg.Proc, r.root, e.cfg.Policy.MessageFile, msg); err != nil {
			e.log.Warn("message file not written", "pod", r.k.Namespace+"/"+r.k.PodName, "file", e.cfg.Policy.MessageFile, "err", err)
		}
	}
}

// queue hands r to the report goroutine without ever blocking: a full
// queue drops it (the log line and the metric have been written already).
func (e *Engine) queue(r report) {
	select {
	case e.reports <- r:
	default:
		e.m.Dropped.Inc()
		e.log.Warn("report queue full: Event dropped", "pod", r.k.Namespace+"/"+r.k.PodName)
	}
}

// logKill is the log line of an action, written on the engine goroutine.
func logKill(log *slog.Logger, k kubeevent.PressureKill, target Target) {
	attrs := []any{"pod", podRef(target), "container", target.containerName(), "cgroup", target.Cgroup,
		"scope", k.Scope, "comm", k.Comm, "pid", k.PID, "rss_bytes", k.RSSBytes, "signals", strings.Join(k.Signals, ","),
		"available_bytes", k.Available, "total_bytes", k.Total, "stall_pct", fmt.Sprintf("%.0f", k.StallPct), "why", k.Why}
	switch k.Outcome {
	case kubeevent.OutcomeDryRun:
		log.Warn("would end process under memory pressure (dry run)", attrs...)
	case kubeevent.OutcomeNothingKillable:
		log.Warn("memory pressure in a target whose processes are all kept: leaving it to the kernel", attrs...)
	case kubeevent.OutcomeNotActed:
		log.Warn("memory short but no kill could help: leaving it to the kernel and kubelet", attrs...)
	default:
		log.Warn("ended process under memory pressure", attrs...)
	}
}
