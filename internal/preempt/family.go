package preempt

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"podwarden/internal/procfs"
)

// A family (a parent that keeps forking, and what it forked) is not given
// the ladder: nothing in a make -j saves state on SIGINT, and every second
// of grace is three more 40 MiB children. It is stopped, so no child is
// born while it is being ended, searched again for children born during
// the choice, then killed whole, and its memory reaped.

// stopWait bounds the waits, all rounds together, for the family to have
// stopped before it is searched again. A fork already under way when
// SIGSTOP is queued still completes (only a fatal signal aborts it), so
// the search waits until the members are stopped; one stuck in reclaim is
// not waited for beyond this (SIGKILL then aborts its fork).
const stopWait = 300 * time.Millisecond

// adoptRounds bounds the searches for children born during the stop: each
// round stops what it finds, which may itself have forked meanwhile.
const adoptRounds = 8

// endFamily ends ep's family as one kill: SIGSTOP to every member, the
// children born meanwhile added and stopped, then the ladder's last step
// (SIGKILL, then process_mrelease) to all.
func (e *Engine) endFamily(ep *episode, now time.Time) {
	fh, ok := ep.h.(*familyHandle)
	if !ok {
		// The other members exited between the choice and the open: the
		// head alone is held, and may still fork.
		fh = &familyHandle{hs: []Handle{ep.h}, pids: []int{ep.victim.PID}}
		ep.h = fh
	}
	if err := fh.Signal(unix.SIGSTOP); err != nil && !errors.Is(err, errExited) {
		e.m.Signals.WithLabelValues("SIGSTOP", "error").Inc()
		e.log.Error("signal failed", "signal", "SIGSTOP", "pid", ep.victim.PID, "err", err)
	} else if err == nil {
		e.m.Signals.WithLabelValues("SIGSTOP", "ok").Inc()
		ep.sent = append(ep.sent, "SIGSTOP")
	}
	stopAt := e.now()
	deadline := time.Now().Add(stopWait)
	e.waitStopped(ep.members, deadline)
	born := 0
	for range adoptRounds {
		kids := e.newChildren(ep.cg, ep.members)
		if len(kids) == 0 {
			break
		}
		for _, k := range kids {
			h, err := e.sig.Open(k)
			if err != nil {
				continue // exited already: nothing to end
			}
			if err := h.Signal(unix.SIGSTOP); err != nil {
				h.Close()
				continue
			}
			fh.hs = append(fh.hs, h)
			fh.pids = append(fh.pids, k.PID)
			ep.members = append(ep.members, k)
			ep.frees += private(k)
			born++
		}
		e.waitStopped(kids, deadline)
	}
	if born > 0 {
		ep.why += fmt.Sprintf("; %d more born while it was being stopped, ended with it", born)
	}
	// How long the choice took (from the step's start) and the stop: on a
	// thrashing node, where the time goes.
	e.log.Info("family stopped", "pid", ep.victim.PID, "comm", ep.victim.Comm, "members", len(ep.members), "born_during_stop", born,
		"chosen_after", stopAt.Sub(now), "stop_took", e.now().Sub(stopAt), "fired_by", e.firedOf(ep))
	e.send(ep, len(e.pol.Ladder)-1, now)
}

// newChildren lists the processes of cg whose parent is a member and that
// are not members yet: forked after the choice. Processes the runtime or
// a kept parent started are never children of a member, so they are never
// swept up.
func (e *Engine) newChildren(cg string, members []procfs.Proc) []procfs.Proc {
	in := make(map[int]bool, len(members))
	for _, m := range members {
		in[m.PID] = true
	}
	var out []procfs.Proc
	for _, p := range e.readProcs(cg, procfs.FieldStat|procfs.FieldStatus) {
		if in[p.PID] || !in[p.PPID] || p.Kernel || p.State == 'Z' || p.State == 'X' {
			continue
		}
		in[p.PID] = true // its own children, read later in the list, count too
		out = append(out, p)
	}
	return out
}

// waitStopped waits, until deadline at most, for every process of ps to
// be stopped or gone.
func (e *Engine) waitStopped(ps []procfs.Proc, deadline time.Time) {
	for {
		all := true
		for _, p := range ps {
			now, err := e.cfg.Proc.Read(p.PID, procfs.FieldStat)
			if err == nil && now.StartTime == p.StartTime && now.State != 'T' && now.State != 't' && now.State != 'Z' && now.State != 'X' {
				all = false
				break
			}
		}
		if all || time.Now().After(deadline) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
