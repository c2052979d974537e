package preempt

import (
	"errors"
	"fmt"
	"maps"
	"time"

	"podwarden/internal/kubeevent"
	"podwarden/internal/procfs"
)

// episode is one spell of memory shortage in one scope: the node, or one
// container against its memory.max. It ends with at most one process
// ended; afterwards it waits, doing nothing, until memory is back above
// releaseAvailable or the cooldown has passed.
type episode struct {
	key    string // "node" or "container:" + cgroup
	scope  kubeevent.Scope
	cg     string // the target cgroup acted in
	target Target
	start  time.Time
	// victim and its handle; nil h for episodes that send nothing (dry
	// run, nothing killable, opted out).
	victim procfs.Proc
	// members are every process ended: the victim alone, or a family
	// (victim first); frees is their private memory when chosen.
	members []procfs.Proc
	frees   uint64
	h       Handle
	step    int // index of the last ladder step sent
	sentAt  time.Time
	sent    []string
	why     string
	// firedBy is what fired the episode (firedOf): the trigger or poll
	// that woke the engine, and the rule that found the danger.
	firedBy string
	root    procRef // a process of the container that lives on
	at      health
	// ended is when the victim exited (or the episode was settled without
	// a signal): from then on nothing more is done in this episode.
	ended time.Time
	// exitSeen is when the victim was seen gone together with every other
	// process of its container: a pod being deleted, unless its cgroup
	// outlives exitSettle.
	exitSeen time.Time
}

const nodeKey = "node"

func containerKey(cg string) string { return "container:" + cg }

// health of the scope ep watches, now.
func (e *Engine) health(ep *episode) health {
	if ep.scope == kubeevent.ScopeNode {
		return e.nodeH
	}
	st := e.targets[ep.cg]
	if st == nil {
		return health{level: levelOK, stall: -1}
	}
	return judge(&st.h, e.pol.Container, e.spec.Window, e.spec.Full, e.pol.Pressure.Share())
}

// advance moves every episode on: an ended one waits for release or the
// cooldown; a running one notices its victim's exit, its target vanishing,
// memory coming back, or escalates when the grace is over and the scope is
// still in danger (at once when it is critical).
func (e *Engine) advance(now time.Time) {
	ladder := e.pol.Ladder
	last := len(ladder) - 1
	for key, ep := range e.episodes {
		h := e.health(ep)
		if !ep.ended.IsZero() {
			if h.level == levelOK || now.Sub(ep.ended) >= e.pol.Cooldown {
				delete(e.episodes, key)
			}
			continue
		}
		exited := ep.h.Exited()
		// heeded: out of danger a whole grace and cooldown after the last
		// signal; the episode closes with its victim spared (below).
		heeded := h.level < levelDanger && now.Sub(ep.sentAt) >= max(ladder[ep.step].Grace, e.pol.Cooldown)
		if !exited && (h.level == levelOK || heeded) {
			// Memory came back, or the episode would close as heeded: a
			// victim whose main thread is already a zombie, or in do_exit,
			// is exiting, though its pidfd polls readable only once its
			// last thread has gone (seen on a starved guest: 7 s). Only
			// where the victim would otherwise be spared: a process whose
			// main thread exits alone can live on, and mid-ladder that must
			// not count as its end.
			exited = !e.anyLeft(ep)
		}
		switch {
		case exited && !e.present(ep.cg):
			e.deleted(ep, now)
			delete(e.episodes, key)
		case exited && ep.exitSeen.IsZero() && e.emptied(ep.cg):
			// The whole container went at once: kubelet deleting the pod
			// looks like this, and its Event must not say podwarden did it.
			// Wait for the cgroup to go too.
			ep.exitSeen = now
		case exited && (ep.exitSeen.IsZero() || now.Sub(ep.exitSeen) >= exitSettle):
			e.killed(ep, now)
		case exited:
			// waiting for the cgroup to go (deleted) or stay (our kill)
		case !e.present(ep.cg):
			e.deleted(ep, now)
			delete(e.episodes, key)
		case ep.step == last:
			if now.Sub(ep.sentAt) > stuckAfter {
				e.log.Error("victim did not exit after SIGKILL", "pid", ep.victim.PID, "comm", ep.victim.Comm, "after", now.Sub(ep.sentAt))
				e.finish(ep, now, "stuck")
			}
		case e.gaveBack(ep):
			// The victim's own memory came back: an interrupted notebook
			// cell drops what it was building. Whatever the scope says now,
			// the next signal would end a process that no longer holds what
			// it was chosen for. It may be exiting (its memory goes before
			// its pidfd polls readable), so it is judged alive only after
			// exitGrace.
			if now.Sub(ep.sentAt) >= exitGrace {
				e.spare(ep, now, "victim gave its memory back after the signal: ladder stopped, victim left alive")
			}
		case h.level == levelCritical:
			e.send(ep, last, now)
		case h.level == levelOK && now.Sub(ep.sentAt) >= exitGrace:
			// A victim frees its memory (exit_mm) before its pidfd polls
			// readable (exit_notify): memory back right after a signal is
			// usually the victim dying, so it is given exitGrace first.
			e.spare(ep, now, "memory came back before the ladder ended: victim left alive")
		case now.Sub(ep.sentAt) >= ladder[ep.step].Grace && h.level == levelDanger:
			e.send(ep, ep.step+1, now)
		case heeded:
			// Out of danger but not back above releaseAvailable for a
			// whole cooldown: the victim heeded the signal (an interrupted
			// notebook cell). A new danger is a new episode, whose culprit
			// is chosen afresh.
			e.spare(ep, now, "victim heeded the signal: memory steady below releaseAvailable, episode closed")
		}
	}
}

// gaveBack reports whether the victim, signalled short of the ladder's
// end, holds at most half the private memory it held when chosen.
func (e *Engine) gaveBack(ep *episode) bool {
	if ep.frees == 0 || len(ep.sent) == 0 || len(ep.members) > 1 {
		return false
	}
	p, err := e.cfg.Proc.Read(ep.victim.PID, procfs.FieldStat|procfs.FieldStatus)
	if !running(p, err, ep.victim) {
		// Gone or going: its exit is noticed by the handle. A process in
		// do_exit has released its memory before its pidfd polls readable;
		// on a loaded node (2026-12-07, load ~9) that took over exitGrace,
		// and a hog dying of SIGINT was counted as left alive, with no
		// kill and no Event.
		return false
	}
	return 2*private(p) <= ep.frees
}

// spare ends ep with its victim alive after the signals sent: the ladder
// stopped short of its end (a kernel interrupted by SIGINT keeps its
// session). Counted by the last signal; and the victim is remembered, so
// that if it grows again soon (warnFor) its next episode starts at
// the next step: a process cannot dodge the ladder by freeing and growing
// again at every SIGINT.
func (e *Engine) spare(ep *episode, now time.Time, msg string) {
	e.log.Info(msg, "pid", ep.victim.PID, "comm", ep.victim.Comm, "signals", ep.sent, "target", ep.target.Name(), "scope", ep.scope)
	if len(ep.sent) > 0 {
		e.m.LadderStops.WithLabelValues(ep.scope.String(), ep.sent[len(ep.sent)-1]).Inc()
		e.warned[procKey(ep.victim)] = warning{step: ep.step, at: now}
	}
	e.finish(ep, now, "recovered")
}

// warnFor is how long a spared victim is remembered: as long as its
// growth could still be evidence against it (the growth window), at least
// the cooldown.
func (e *Engine) warnFor() time.Duration { return max(e.pol.Cooldown, e.pol.GrowthWindow) }

// warning is a victim that was left alive after ladder step step, at at.
type warning struct {
	step int
	at   time.Time
}

// procKey names one process for its life: pid and start time.
func procKey(p procfs.Proc) string { return fmt.Sprintf("%d/%d", p.PID, p.StartTime) }

// startStep is the ladder step a new episode starts at for p: the first,
// or the one after the step p was spared at lately (warnFor).
func (e *Engine) startStep(p procfs.Proc, now time.Time) int {
	w, ok := e.warned[procKey(p)]
	if !ok || now.Sub(w.at) >= e.warnFor() {
		return 0
	}
	return min(w.step+1, len(e.pol.Ladder)-1)
}

// anyLeft reports whether a member of ep still runs: not a zombie, and
// not in do_exit (PF_EXITING) either. Asked only once memory came back: a
// main thread in do_exit with its process's memory gone is the process
// dying (on a loaded node it sat there past exitGrace, and was counted
// as left alive), though one that exits alone (pthread_exit) is not.
func (e *Engine) anyLeft(ep *episode) bool {
	members := ep.members
	if len(members) == 0 {
		members = []procfs.Proc{ep.victim}
	}
	for _, m := range members {
		if p, err := e.cfg.Proc.Read(m.PID, procfs.FieldStat); running(p, err, m) {
			return true
		}
	}
	return false
}

// running reports whether a read of want's pid (p, err) is still want,
// running: not gone, not a zombie, not in do_exit.
func running(p procfs.Proc, err error, want procfs.Proc) bool {
	return err == nil && p.StartTime == want.StartTime && p.State != 'Z' && p.State != 'X' && !p.Exiting
}

// deleted ends an episode whose target went away under it (the pod was
// deleted): its memory is on its way back, and nothing else is chosen until
// it has had time to come.
func (e *Engine) deleted(ep *episode, now time.Time) {
	e.settle = now.Add(settleGone)
	e.finish(ep, now, "target_gone")
	e.log.Info("target vanished during the episode: no other process is chosen for it", "cgroup", ep.cg, "pid", ep.victim.PID, "signals", ep.sent)
}

// emptied reports whether cg has no process left (or is gone).
func (e *Engine) emptied(cg string) bool {
	pids, err := e.cfg.Cgroups.Procs(cg, true)
	return err != nil || len(pids) == 0
}

// present reports whether the target cgroup is in the snapshot and exists.
func (e *Engine) present(cg string) bool {
	st := e.targets[cg]
	return st != nil && !st.gone
}

// finish ends ep without a kill and counts its outcome.
func (e *Engine) finish(ep *episode, now time.Time, outcome string) {
	ep.ended = now
	if ep.h != nil {
		ep.h.Close()
		ep.h = nil
	}
	e.m.Episodes.WithLabelValues(ep.scope.String(), outcome).Inc()
}

// killed records that the victim exited after the signals sent: one kill,
// told to the user, and the cooldown starts.
func (e *Engine) killed(ep *episode, now time.Time) {
	ep.h.Close()
	ep.h = nil
	ep.ended = now
	e.lastKill[ep.key] = now
	sig := "none"
	if len(ep.sent) > 0 {
		sig = ep.sent[len(ep.sent)-1]
	}
	e.m.Kills.WithLabelValues(ep.target.Namespace, ep.target.PodLabel(), ep.target.ContainerLabel(), ep.scope.String(), sig).Inc()
	e.m.Episodes.WithLabelValues(ep.scope.String(), "killed").Inc()
	e.tell(ep, "")
}

// tell logs what was done and queues the Event and message file.
func (e *Engine) tell(ep *episode, outcome kubeevent.Outcome) {
	k := kubeevent.PressureKill{
		PodUID: ep.target.PodUID, Namespace: ep.target.Namespace, PodName: ep.target.PodName, Container: ep.target.Container,
		Comm: ep.victim.Comm, PID: ep.victim.PID, RSSBytes: ep.rss(), Signals: ep.sent, Scope: ep.scope,
		Available: ep.at.avail, Total: ep.at.total, StallPct: ep.at.stall * 100, Why: ep.why, Outcome: outcome,
	}
	if ep.at.stall < 0 {
		k.StallPct = -1
	}
	fired := e.firedOf(ep)
	logKill(e.log.With("fired_by", fired), k, ep.target)
	// The Event and the message file have no field of their own for it:
	// it ends their why.
	k.Why += "; fired by " + fired
	e.queue(report{k: k, root: ep.root})
}

// rss is what the ended processes hold resident.
func (ep *episode) rss() uint64 {
	if len(ep.members) == 0 {
		return ep.victim.RSS()
	}
	var n uint64
	for _, m := range ep.members {
		n += m.RSS()
	}
	return n
}

// send sends ladder step i to the victim.
func (e *Engine) send(ep *episode, i int, now time.Time) {
	name := e.pol.Ladder[i].Signal
	err := ep.h.Signal(signals[name])
	// The grace runs from the signal, not from the start of the step:
	// under thrashing a step can take seconds.
	ep.step, ep.sentAt = i, e.now()
	switch {
	case errors.Is(err, errExited):
		e.m.Signals.WithLabelValues(name, "exited").Inc()
		if len(ep.sent) == 0 {
			// Gone before anything was sent: not ours to count.
			e.finish(ep, now, "recovered")
			return
		}
		e.killed(ep, now)
		return
	case err != nil:
		e.m.Signals.WithLabelValues(name, "error").Inc()
		e.log.Error("signal failed", "signal", name, "pid", ep.victim.PID, "err", err)
		return
	}
	e.m.Signals.WithLabelValues(name, "ok").Inc()
	ep.sent = append(ep.sent, name)
	e.log.Info("signal sent", "signal", name, "pid", ep.victim.PID, "comm", ep.victim.Comm, "target", ep.target.Name(), "scope", ep.scope)
	if name == "SIGKILL" && e.pol.Mrelease {
		if err := ep.h.Mrelease(); err != nil {
			e.log.Debug("process_mrelease", "pid", ep.victim.PID, "err", err)
		}
	}
}

// cooling reports whether a new episode in key must wait.
func (e *Engine) cooling(key string, now time.Time) bool {
	if now.Before(e.settle) {
		return true
	}
	if at, ok := e.retryAt[key]; ok && now.Before(at) {
		return true
	}
	last, ok := e.lastKill[key]
	return ok && now.Sub(last) < e.pol.Cooldown
}

// forget drops the cooldown state that holds nothing back any more, in
// every scope at once: a container removed after a kill or refusal is
// never asked about again, so its entries would stay for the agent's life.
func (e *Engine) forget(now time.Time) {
	cooled := func(_ string, at time.Time) bool { return now.Sub(at) >= e.pol.Cooldown }
	maps.DeleteFunc(e.lastKill, cooled)
	maps.DeleteFunc(e.refusedAt, cooled)
	maps.DeleteFunc(e.warned, func(_ string, w warning) bool { return now.Sub(w.at) >= e.warnFor() })
	maps.DeleteFunc(e.retryAt, func(_ string, at time.Time) bool { return !now.Before(at) })
}
