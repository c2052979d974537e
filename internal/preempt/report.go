package preempt

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"podwarden/internal/kubeevent"
)

// Reporter posts the engine's actions as Kubernetes Events: the agent's
// one outbox (*kubeevent.Reporter), which counts what it drops in
// podwarden_reports_dropped_total. It must never wait for the API server:
// the engine calls it on its own goroutine, as it acts.
type Reporter interface {
	PodPressureKill(ctx context.Context, k kubeevent.PressureKill) error
}

// nodeReporter is a Reporter that can also put an Event on the Node, for
// what happens at node scope with no pod to tell (*kubeevent.Reporter
// can). A separate interface so that a Reporter without it still works.
type nodeReporter interface {
	NodePressure(ctx context.Context, k kubeevent.PressureKill) error
}

// report is one action, handed to the report goroutine, which writes its
// message file into the container off the protection path: that goes
// through the container's root, which a hostile pod can make slow (a FUSE
// mount). The action's Event is in the outbox already.
type report struct {
	k kubeevent.PressureKill
	// root is a process of the container that lives on (its init or a
	// kept process): the message file is written through its
	// /proc/PID/root, if it is still that process. Zero when there is
	// none.
	root procRef
}

// reportQueue bounds the actions waiting for the report goroutine.
const reportQueue = 64

// reportLoop writes message files until ctx ends.
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

// deliver writes r's message file, if it has one. Writing through
// /proc/PID/root cannot be cancelled, so ctx only stops a late start.
func (e *Engine) deliver(ctx context.Context, r report) {
	if !e.wantsMessage(r) || ctx.Err() != nil {
		return
	}
	msg := time.Now().UTC().Format(time.RFC3339) + " " + kubeevent.PressureMessage(r.k) + "\n"
	if err := writeMessage(e.cfg.Proc, r.root, e.cfg.Policy.MessageFile, msg); err != nil {
		e.log.Warn("message file not written", "pod", r.k.Namespace+"/"+r.k.PodName, "file", e.cfg.Policy.MessageFile, "err", err)
	}
}

// wantsMessage: kills only, and only where a process lives on to write
// through; a dry run writes nothing into containers.
func (e *Engine) wantsMessage(r report) bool {
	return e.cfg.Policy.MessageFile != "" && r.root.pid > 0 && r.k.Outcome == ""
}

// queue hands the action's Event to the outbox and the action to the
// report goroutine, without ever blocking. The outbox counts what it
// drops (podwarden_reports_dropped_total); a full report queue drops the
// message file (podwarden_preempt_reports_dropped_total). The log line
// and the metrics have been written already.
func (e *Engine) queue(r report) {
	if e.cfg.Reporter != nil && r.k.PodName != "" {
		// The outbox never waits, so there is nothing to cancel.
		if err := e.cfg.Reporter.PodPressureKill(context.Background(), r.k); err != nil {
			e.log.Warn("pressure event not posted", "pod", r.k.Namespace+"/"+r.k.PodName, "err", err)
		}
	}
	select {
	case e.reports <- r:
	default:
		if e.wantsMessage(r) {
			e.m.Dropped.Inc()
			e.log.Warn("report queue full: message file dropped", "pod", r.k.Namespace+"/"+r.k.PodName)
		}
	}
}

// tellRefusal says why ep ended without a kill (refuse calls it once per
// cooldown and reason, so once per episode): the log line, the culprit's
// pod's Event when there is a culprit and, at node scope, an Event on the
// Node through the same outbox, so "kubectl describe node" says why
// nothing was ended while its memory was short. ep.why leads with reason.
func (e *Engine) tellRefusal(ep *episode, reason string) {
	if ep.target.Cgroup == "" {
		e.log.Warn("memory short but no kill could help: leaving it to the kernel and kubelet", "scope", ep.scope, "reason", reason,
			"available_bytes", ep.at.avail, "total_bytes", ep.at.total, "why", ep.why, "fired_by", e.firedOf(ep))
	} else {
		e.tell(ep, kubeevent.OutcomeNotActed)
	}
	nr, ok := e.cfg.Reporter.(nodeReporter)
	if !ok || ep.scope != kubeevent.ScopeNode {
		return
	}
	k := kubeevent.PressureKill{
		PodUID: ep.target.PodUID, Namespace: ep.target.Namespace, PodName: ep.target.PodName, Container: ep.target.Container,
		Scope: ep.scope, Available: ep.at.avail, Total: ep.at.total, StallPct: ep.at.stall * 100, Why: ep.why + "; fired by " + e.firedOf(ep),
		Outcome: kubeevent.OutcomeNotActed,
	}
	if ep.at.stall < 0 {
		k.StallPct = -1
	}
	// The outbox never waits, so there is nothing to cancel.
	if err := nr.NodePressure(context.Background(), k); err != nil {
		e.log.Warn("node pressure event not posted", "err", err)
	}
}

// logKill is the log line of an action, written on the engine goroutine.
func logKill(log *slog.Logger, k kubeevent.PressureKill, target Target) {
	attrs := []any{"pod", target.PodRef(), "container", target.ContainerLabel(), "cgroup", target.Cgroup,
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
