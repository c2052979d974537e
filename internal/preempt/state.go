package preempt

import (
	"time"

	"podwarden/internal/policy"
	"podwarden/internal/target"
)

// Target is one container the engine may act in, as the agent knows it:
// its identity (target.Ref, the agent's too) and what early action may do.
type Target struct {
	target.Ref
	Preempt policy.PreemptDecision
	// InitPID is the container's init as the runtime started it (host
	// pid), 0 when the agent does not know it: the engine then finds it in
	// the process tree (containerInit).
	InitPID int
}

// sample is one reading of a memory domain: the node, a container or a pod.
type sample struct {
	at time.Time
	// total is MemTotal for the node, memory.max for a cgroup (0 when the
	// cgroup has no limit).
	total uint64
	// avail is MemAvailable for the node, total minus committed for a
	// cgroup with a limit.
	avail uint64
	// committed is usage minus reclaimable page cache (cgroups only).
	committed uint64
	usage     uint64
	// shmem is tmpfs and shared memory charged to a cgroup: no kill of a
	// process frees it.
	shmem uint64
	// some and full are the PSI stall totals in microseconds; psi is
	// false when the domain has none (cgroup v1, psi=0).
	some, full uint64
	psi        bool
}

// history keeps the samples of one domain for as long as the longest
// window asks: the growth window and the pressure window.
type history struct {
	s []sample
	// fallSeen is when the newest run of danger by a fall alone (no stall,
	// above criticalAvailable) began: judge acts on such a fall only when
	// the next sample, taken after it, shows it going on.
	fallSeen time.Time
}

func (h *history) add(s sample, keep time.Duration) {
	h.s = append(h.s, s)
	cut := 0
	for cut < len(h.s)-1 && s.at.Sub(h.s[cut].at) > keep {
		cut++
	}
	if cut > 0 {
		h.s = append(h.s[:0], h.s[cut:]...)
	}
}

func (h *history) last() (sample, bool) {
	if len(h.s) == 0 {
		return sample{}, false
	}
	return h.s[len(h.s)-1], true
}

// stall is the share (0..1) of the last window in which tasks stalled on
// memory, from the PSI totals: the newest sample against the newest one at
// least window older (or, early on, the oldest if it spans half a window).
// ok is false without PSI or without enough history.
func (h *history) stall(window time.Duration, full bool) (float64, bool) {
	cur, ok := h.last()
	if !ok || !cur.psi {
		return 0, false
	}
	var then *sample
	for i := len(h.s) - 2; i >= 0; i-- {
		if cur.at.Sub(h.s[i].at) >= window {
			then = &h.s[i]
			break
		}
	}
	if then == nil && len(h.s) > 1 && cur.at.Sub(h.s[0].at) >= window/2 {
		then = &h.s[0]
	}
	if then == nil || !then.psi {
		return 0, false
	}
	span := cur.at.Sub(then.at).Microseconds()
	a, b := then.some, cur.some
	if full {
		a, b = then.full, cur.full
	}
	if span <= 0 || b < a {
		return 0, false // counters reset: the cgroup was recreated
	}
	return min(float64(b-a)/float64(span), 1), true
}

// span returns, for one field of the samples, the newest value and the
// lowest and highest within the window before it.
func (h *history) span(window time.Duration, field func(sample) uint64) (cur, lo, hi uint64) {
	last, ok := h.last()
	if !ok {
		return 0, 0, 0
	}
	cur = field(last)
	lo, hi = cur, cur
	for _, s := range h.s {
		if last.at.Sub(s.at) <= window {
			lo, hi = min(lo, field(s)), max(hi, field(s))
		}
	}
	return cur, lo, hi
}

// growth is how much committed memory rose over the window: the newest
// value minus the lowest within it.
func (h *history) growth(window time.Duration) uint64 {
	cur, lo, _ := h.span(window, func(s sample) uint64 { return s.committed })
	return cur - lo
}

// growthSince is how much committed memory rose since t: the newest value
// minus the lowest from t on.
func (h *history) growthSince(t time.Time) uint64 {
	last, ok := h.last()
	if !ok {
		return 0
	}
	lo := last.committed
	for _, s := range h.s {
		if !s.at.Before(t) {
			lo = min(lo, s.committed)
		}
	}
	return last.committed - lo
}

// spans reports whether the history reaches back a whole window.
func (h *history) spans(window time.Duration) bool {
	cur, ok := h.last()
	return ok && cur.at.Sub(h.s[0].at) >= window
}

// drop is how much available memory fell over the window: the highest
// value within it minus the newest.
func (h *history) drop(window time.Duration) uint64 {
	cur, _, hi := h.span(window, func(s sample) uint64 { return s.avail })
	return hi - cur
}

// ongoing reports whether a fall of drop over the window goes on at the
// newest sample: since the sample before it (at least tick/2 older),
// available memory fell at a quarter of the window's pace or more.
func (h *history) ongoing(window time.Duration, drop uint64) bool {
	if drop == 0 || len(h.s) < 2 {
		return drop > 0
	}
	cur := h.s[len(h.s)-1]
	for i := len(h.s) - 2; i >= 0; i-- {
		prev := h.s[i]
		dt := cur.at.Sub(prev.at)
		if dt < tick/2 && i > 0 {
			continue
		}
		if prev.avail <= cur.avail {
			return false
		}
		return 4*float64(prev.avail-cur.avail)*float64(window) >= float64(drop)*float64(dt)
	}
	return true
}

// level is how short a domain is of memory.
type level int

const (
	levelOK       level = iota // at or above releaseAvailable
	levelLow                   // between minAvailable and releaseAvailable, or below without pressure
	levelDanger                // below minAvailable and under pressure
	levelCritical              // below criticalAvailable
)

func (l level) String() string {
	return [...]string{"ok", "low", "danger", "critical"}[l]
}

// health is a domain judged against its thresholds.
type health struct {
	level        level
	avail, total uint64
	pct          float64 // avail in percent of total
	stall        float64 // 0..1; -1 unknown
	lv           policy.Levels
	// fall is, when available memory is falling fast below
	// releaseAvailable, how much short of criticalAvailable it would be
	// after runway windows at the pace of the last one.
	fall uint64
	// by is the rule that put the scope in danger (or critical); drop and
	// bar are its figures: the fall of available memory in the last
	// window, and the stall bar.
	by   rule
	drop uint64
	bar  float64
	// pending is a fall judged danger at this sample for the first time:
	// the next sample, a tick later, confirms it (judge).
	pending bool
}

// rule is which of judge's rules put a scope in danger: what the log and
// the Event say fired the episode.
type rule uint8

const (
	ruleNone     rule = iota
	ruleCritical      // below criticalAvailable, whatever the pressure
	ruleMinPSI        // below minAvailable with PSI stall over the bar
	ruleMinDrop       // below minAvailable, available falling fastDrop% of the total in a window
	ruleMinFall       // below minAvailable without PSI, available falling at all
	ruleFastFall      // below releaseAvailable, reaching criticalAvailable within runway windows
)

// fastDrop is the fall of available memory, in percent of the total per
// window, that counts as pressure on its own: at that pace a domain below
// minAvailable runs out within a few windows, whether or not tasks have
// begun to stall (a fast hog outruns PSI).
const fastDrop = 1.0

// fastDropBar is fastDrop of total, in bytes per window.
func fastDropBar(total uint64) float64 { return fastDrop / 100 * float64(total) }

// runway is how many windows ahead the engine looks below
// releaseAvailable: a domain whose available memory, at the pace of the
// last window, reaches criticalAvailable within runway windows is in
// danger now. Acting takes a scan, a stop and a kill of every member of a
// family, which on a starved node (a busy host, a guest under emulation)
// is most of a second; a fork storm at 120 MiB/s crosses minAvailable to
// nothing faster than that.
const runway = 2

// judge applies th to the newest sample of h. A domain without a total
// (an unlimited cgroup) is always ok. Pressure is PSI stall at least bar
// over the window, or available memory falling by fastDrop percent of the
// total within it; without PSI, any fall. Below releaseAvailable, memory
// falling so fast that it reaches criticalAvailable within runway windows
// is danger without waiting for minAvailable: who grew is still what is
// ended, and nothing when nothing did.
func judge(h *history, th policy.Thresholds, window time.Duration, full bool, bar float64) health {
	cur, ok := h.last()
	if !ok || cur.total == 0 {
		return health{level: levelOK, stall: -1}
	}
	hl := health{avail: cur.avail, total: cur.total, pct: 100 * float64(cur.avail) / float64(cur.total), stall: -1}
	hl.lv = th.Resolve(cur.total)
	stall, psi := h.stall(window, full)
	if psi {
		hl.stall = stall
	}
	drop := h.drop(window)
	stalled, fast := psi && stall >= bar, float64(drop) >= fastDropBar(cur.total)
	pressure := stalled || fast || !cur.psi && drop > 0
	// The fall is judged on a whole window of history only: two samples
	// 100 ms apart say nothing about a pace.
	falling := drop > 0 && h.spans(window) && cur.avail-min(cur.avail, hl.lv.Critical) < runway*drop
	if falling {
		hl.fall = hl.lv.Critical + runway*drop - cur.avail
	}
	hl.drop, hl.bar = drop, bar
	switch {
	case hl.lv.Critical > 0 && cur.avail < hl.lv.Critical:
		hl.level, hl.by = levelCritical, ruleCritical
	case cur.avail < hl.lv.Min && pressure:
		hl.level, hl.by = levelDanger, ruleMinFall
		switch {
		case stalled:
			hl.by = ruleMinPSI
		case fast:
			hl.by = ruleMinDrop
		}
	case cur.avail < hl.lv.Release && falling:
		hl.level, hl.by = levelDanger, ruleFastFall
	case cur.avail < hl.lv.Release:
		hl.level = levelLow
	default:
		hl.level = levelOK
	}
	// A fall alone is danger once it is seen going on after it was first
	// judged so. The sample that first shows a fall may be the first one
	// after a load ended: a pod that reads a dataset and stops at the line
	// (on a starved node such a load takes seconds and, while it runs,
	// looks exactly like a hog) must be seen holding, not ended for the
	// last part of its load. A later sample tells: a hog takes more
	// (ongoing: at once if it is smooth, at its next burst if it pauses
	// between them, while the window still holds the fall), a held load
	// does not, and its fall leaves the window. Critical and PSI stall do
	// not wait.
	if hl.level == levelDanger && (hl.by == ruleMinDrop || hl.by == ruleMinFall || hl.by == ruleFastFall) {
		if h.fallSeen.IsZero() {
			h.fallSeen = cur.at
		}
		if cur.at.Sub(h.fallSeen) < tick/2 || !h.ongoing(window, drop) {
			hl.level, hl.pending = levelLow, true
		}
	} else {
		h.fallSeen = time.Time{}
	}
	return hl
}

// need is what a kill must give back to take the scope out of danger:
// back above minAvailable. Not releaseAvailable: what a growing hog holds
// and what is available move together (each MiB it takes is one less
// available), so a hog refused against releaseAvailable once would be
// refused for good, and on a node mostly held flat the kernel would then
// kill the biggest holder, a bystander. Above minAvailable is out of
// danger; the episode's hysteresis does the rest.
//
// Above minAvailable, in danger only because memory falls fast, it must
// give back what the fall would take below criticalAvailable within the
// runway: a pod growing 5 MiB/s while a host process takes 70 MiB/s is
// not what to end.
func (hl health) need() uint64 {
	if hl.avail >= hl.lv.Min {
		return hl.fall
	}
	return hl.lv.Min - hl.avail
}
