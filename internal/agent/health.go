package agent

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// slowAfter is how long a call to a dependency may take before health
// reports it as slow.
const slowAfter = 2 * time.Second

// health is what /healthz reports: whether the protection loop completes
// its passes within their bounds, and which dependencies are slow. The loop
// never waits for a dependency, so a slow one degrades Events or
// discovery of new containers but does not fail liveness: restarting the
// agent would not make the API server answer, and would leave the node
// unprotected while it starts.
type health struct {
	// fastBound and fullBound are how old the last fast and full pass may
	// be before the loop counts as stalled.
	fastBound, fullBound time.Duration
	// lastFast and lastFull are when the loop last finished a pass (unix
	// nanoseconds; zero before the first).
	lastFast, lastFull atomic.Int64
	// step is what the loop is doing now, and since when.
	step atomic.Pointer[loopStep]

	mu   sync.Mutex
	deps []*dependency
}

type loopStep struct {
	what  string
	since time.Time
}

func (h *health) init(fast, full time.Duration) {
	// Three missed passes and a margin for a loaded node. Both intervals
	// are bounded (MaxFastInterval, policy.MaxInterval), so this cannot
	// overflow.
	h.fastBound = 3*fast + 30*time.Second
	h.fullBound = 3*full + time.Minute
	h.enter("starting")
}

// enter records the step the loop starts.
func (h *health) enter(what string) {
	h.step.Store(&loopStep{what: what, since: time.Now()})
}

// passDone records a finished pass; the loop is idle until its next event.
func (h *health) passDone(full bool) {
	now := time.Now()
	h.lastFast.Store(now.UnixNano())
	if full {
		h.lastFull.Store(now.UnixNano())
	}
	h.enter("idle")
}

// dependency registers a dependency by name.
func (h *health) dependency(name string, m *Metrics) *dependency {
	d := &dependency{name: name, m: m}
	m.DependencyUp.WithLabelValues(name).Set(1)
	h.mu.Lock()
	h.deps = append(h.deps, d)
	h.mu.Unlock()
	return d
}

// Health is a snapshot of the agent's health.
type Health struct {
	// Protecting is false when the protection loop has not completed a
	// pass within its bound; Stalled then says where it is stuck.
	Protecting bool
	Stalled    string
	// Slow names each dependency that is slow or failing, with what it
	// is doing. They do not make the agent unhealthy.
	Slow []string
}

// Health reports whether the protection loop is keeping its bounds and
// which dependencies are slow.
func (a *Agent) Health() Health {
	return a.health.check(time.Now())
}

func (h *health) check(now time.Time) Health {
	out := Health{Protecting: true}
	step := h.step.Load()
	stale := func(last int64, bound time.Duration) bool {
		return last != 0 && now.Sub(time.Unix(0, last)) > bound
	}
	if stale(h.lastFast.Load(), h.fastBound) || stale(h.lastFull.Load(), h.fullBound) {
		out.Protecting = false
		out.Stalled = fmt.Sprintf("protection loop has not completed a pass in %s (fast pass bound %s, full %s); it is in %q since %s ago",
			now.Sub(time.Unix(0, h.lastFast.Load())).Round(time.Millisecond), h.fastBound, h.fullBound,
			step.what, now.Sub(step.since).Round(time.Millisecond))
	}
	h.mu.Lock()
	deps := slices.Clone(h.deps)
	h.mu.Unlock()
	for _, d := range deps {
		if s := d.status(now); s != "" {
			out.Slow = append(out.Slow, s)
		}
	}
	return out
}

// ServeHealth is the /healthz handler: 200 while protection keeps its
// bounds (naming slow dependencies in the body), 503 when it does not.
func (a *Agent) ServeHealth(w http.ResponseWriter, _ *http.Request) {
	h := a.Health()
	var b strings.Builder
	code := http.StatusOK
	if h.Protecting {
		b.WriteString("ok: protecting\n")
	} else {
		code = http.StatusServiceUnavailable
		b.WriteString("failing: " + h.Stalled + "\n")
	}
	for _, s := range h.Slow {
		b.WriteString("slow dependency: " + s + "\n")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(b.String()))
}

// ServeReady is the /readyz handler: 200 once the first full pass is done.
func (a *Agent) ServeReady(w http.ResponseWriter, _ *http.Request) {
	if a.Ready() {
		fmt.Fprintln(w, "ok")
		return
	}
	msg := "first full pass not done"
	if a.rt != nil {
		msg += " (waiting for the container runtime's first answer)"
	}
	http.Error(w, msg, http.StatusServiceUnavailable)
}

// dependency tracks calls to something slow the agent needs beside the
// loop (the container runtime, the API server): the call in flight and
// the last failure.
type dependency struct {
	name string
	m    *Metrics

	mu      sync.Mutex
	what    string    // the call in flight
	since   time.Time // zero when idle
	lastErr error
	errAt   time.Time
}

func (d *dependency) begin(what string) {
	d.mu.Lock()
	d.what, d.since = what, time.Now()
	d.mu.Unlock()
}

func (d *dependency) end(err error) {
	d.mu.Lock()
	d.since = time.Time{}
	if err != nil {
		d.lastErr, d.errAt = err, time.Now()
	} else {
		d.lastErr = nil
	}
	d.mu.Unlock()
	up := 1.0
	if err != nil {
		up = 0
	}
	d.m.DependencyUp.WithLabelValues(d.name).Set(up)
}

// status is "" for a healthy dependency, else what is wrong with it.
func (d *dependency) status(now time.Time) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.since.IsZero() && now.Sub(d.since) > slowAfter {
		return fmt.Sprintf("%s: %s has had no answer for %s", d.name, d.what, now.Sub(d.since).Round(time.Millisecond))
	}
	if d.lastErr != nil {
		return fmt.Sprintf("%s: last call failed %s ago: %v", d.name, now.Sub(d.errAt).Round(time.Millisecond), d.lastErr)
	}
	return ""
}
