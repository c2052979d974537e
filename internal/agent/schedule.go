package agent

import (
	"container/heap"
	"context"
	"time"
)

// recheckAfter are the delays at which a new target is checked again: runc
// writes memory.oom.group=1 after it creates the cgroup, so the first write
// can be undone moments later.
var recheckAfter = []time.Duration{20 * time.Millisecond, 200 * time.Millisecond, time.Second}

// minProtectGap rate-limits whole-target passes triggered by events: a pod
// that makes cgroups in a loop (it may, with writable cgroups) gets at most
// one full check of its subtree per gap, however fast it goes. New
// processes are not delayed by it: they are protected from their own
// event.
const minProtectGap = 100 * time.Millisecond

// schedule holds when each target is due for its next protect pass. It is
// owned by the loop, runs on one timer and holds at most one live entry
// per target, so bursts of events cost neither goroutines nor memory.
type schedule struct {
	h     dueHeap
	timer *time.Timer
	// armed is the time the timer fires at (zero: stopped).
	armed time.Time
}

type dueEntry struct {
	at time.Time
	cg string
}

type dueHeap []dueEntry

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueEntry)) }
func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// protectAt makes target t due at time at (or earlier, if it already is),
// never sooner than minProtectGap after its last pass.
func (a *Agent) protectAt(t *Target, at time.Time) {
	if earliest := t.st.last.Add(minProtectGap); at.Before(earliest) {
		at = earliest
	}
	if !t.st.due.IsZero() && !at.Before(t.st.due) {
		return
	}
	t.st.due = at
	heap.Push(&a.sched.h, dueEntry{at, t.Cgroup})
	a.armTimer()
}

// startRechecks protects t again at each of recheckAfter from now.
func (a *Agent) startRechecks(t *Target, now time.Time) {
	t.st.base, t.st.step = now, 0
	a.nextRecheck(t)
}

func (a *Agent) nextRecheck(t *Target) {
	if t.st.step >= len(recheckAfter) {
		return
	}
	at := t.st.base.Add(recheckAfter[t.st.step])
	t.st.step++
	a.protectAt(t, at)
}

// armTimer points the timer at the earliest entry.
func (a *Agent) armTimer() {
	if len(a.sched.h) == 0 {
		return
	}
	at := a.sched.h[0].at
	if !a.sched.armed.IsZero() && !at.Before(a.sched.armed) {
		return
	}
	if a.sched.timer == nil {
		a.sched.timer = time.NewTimer(time.Until(at))
	} else {
		a.sched.timer.Reset(time.Until(at))
	}
	a.sched.armed = at
}

// timerC is the timer's channel, nil (never ready) before the first entry.
func (a *Agent) timerC() <-chan time.Time {
	if a.sched.timer == nil {
		return nil
	}
	return a.sched.timer.C
}

// runDue protects every target whose time has come. Entries of targets
// that went, or were rescheduled, are dropped.
func (a *Agent) runDue(ctx context.Context, now time.Time) {
	a.sched.armed = time.Time{}
	for len(a.sched.h) > 0 && !a.sched.h[0].at.After(now) {
		e := heap.Pop(&a.sched.h).(dueEntry)
		t := a.targets[e.cg]
		if t == nil || t.st.due.IsZero() || !t.st.due.Equal(e.at) {
			continue
		}
		t.st.due = time.Time{}
		a.protect(ctx, t, "recheck")
		a.nextRecheck(t)
	}
	a.armTimer()
}
