package kubeevent

import (
	"context"
	"encoding/pem"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recObserver records what the outbox tells its Observer.
type recObserver struct {
	mu      sync.Mutex
	dropped map[DropReason]int
	calls   []string
	errs    []error
}

// observe makes a recObserver r's Observer.
func observe(r *Reporter) *recObserver {
	o := &recObserver{dropped: map[DropReason]int{}}
	r.Observe(o)
	return o
}

func (o *recObserver) Calling(what string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, what)
}

func (o *recObserver) Called(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil {
		o.errs = append(o.errs, err)
	}
}

func (o *recObserver) Dropped(reason DropReason) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.dropped[reason]++
}

func (o *recObserver) drops() map[DropReason]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.dropped)
}

// wait polls until cond holds on the drops; the outbox works beside the
// test.
func (o *recObserver) wait(t *testing.T, what string, cond func(map[DropReason]int) bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(o.drops()); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			o.mu.Lock()
			defer o.mu.Unlock()
			t.Fatalf("timed out waiting for %s: drops %v, calls %v, errors %v", what, o.dropped, o.calls, o.errs)
		}
	}
}

// hungAPI is an API server over TLS that accepts every request and never
// answers until the test ends; held counts the requests it holds.
func hungAPI(t *testing.T) (Config, *atomic.Int64) {
	t.Helper()
	var held atomic.Int64
	stop := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		held.Add(1)
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(stop); srv.Close() })
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	token := filepath.Join(dir, "token")
	must(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))
	must(t, os.WriteFile(token, []byte("tok\n"), 0o600))
	return Config{Host: srv.URL, TokenFile: token, CAFile: ca}, &held
}

// TestOutboxHungAPIServer: an API server that never answers never makes a
// caller wait. The outbox holds one call and queueLen reports; every
// report past those is dropped at once and counted as queue_full, and the
// call in flight is told to the Observer (the agent's /healthz names it).
func TestOutboxHungAPIServer(t *testing.T) {
	cfg, held := hungAPI(t)
	r, err := NewReporter(t.Context(), cfg, "node-a", nil)
	must(t, err)
	t.Cleanup(r.Close)
	// Longer than the test: the call must stay in flight while the queue
	// fills, however slow this machine is.
	r.timeout = time.Hour
	obs := observe(r)
	ctx := t.Context()

	must(t, r.NodeOOM(ctx, OOM{HostVictims: []string{"sshd (pid 1)"}}))
	for deadline := time.Now().Add(30 * time.Second); held.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first Event never reached the API server")
		}
	}
	// Many pods, so no per-object cap applies: only the queue's bound.
	const extra = 100
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range queueLen + extra {
			o := OOM{Namespace: "ml", PodName: "nb-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26), PodUID: "u", Comm: "python", PID: i}
			if err := r.PodOOM(ctx, o); err != nil {
				t.Error(err)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("a caller waited for a hung API server")
	}
	if d := obs.drops(); d[DropQueueFull] != extra || len(d) != 1 {
		t.Errorf("drops %v, want exactly %d queue_full (one call in flight, %d queued)", d, extra, queueLen)
	}
	obs.mu.Lock()
	calls := strings.Join(obs.calls, "; ")
	obs.mu.Unlock()
	if !strings.Contains(calls, "post OOMKilledHostProcess Event on Node node-a") {
		t.Errorf("calls told %q, want the Node Event's post", calls)
	}
	if held.Load() != 1 {
		t.Errorf("%d requests reached the server, want 1 (the rest wait behind it)", held.Load())
	}
}

// TestOutboxHungAPIServerBacksOff: with the real per-call timeout cut
// short, a server that never answers costs one call per backoff, not one
// per report: the reports behind the failed call are dropped as backoff.
func TestOutboxHungAPIServerBacksOff(t *testing.T) {
	cfg, held := hungAPI(t)
	r, err := NewReporter(t.Context(), cfg, "node-a", nil)
	must(t, err)
	t.Cleanup(r.Close)
	r.timeout = 50 * time.Millisecond
	obs := observe(r)
	for i := range 20 {
		must(t, r.NodeOOM(t.Context(), OOM{HostVictims: []string{"sshd (pid " + string(rune('0'+i%10)) + ")"}}))
	}
	obs.wait(t, "every report accounted for", func(d map[DropReason]int) bool {
		return d[DropAPIError]+d[DropBackoff]+d[DropRateLimited] == 20
	})
	d := obs.drops()
	if d[DropAPIError] < 1 || d[DropBackoff] < 1 {
		t.Errorf("drops %v: want a failed call and reports dropped while backing off", d)
	}
	if n := held.Load(); n > int64(d[DropAPIError]) {
		t.Errorf("%d requests for %d failed calls: a failed call was retried on a server that does not answer", n, d[DropAPIError])
	}
}

// TestOutboxStormIsFair (hostile): a pod whose processes are OOM-killed
// thousands of times (a fork bomb under a small limit) cannot fill the
// queue the other Events share. At most eventBurst of one object's
// reports wait; the rest are dropped at once as rate_limited, and the
// node's Event and early action's Event on another pod still go out.
func TestOutboxStormIsFair(t *testing.T) {
	f := &fakeAPI{token: "tok-1"}
	r := startReporter(t, f, nil)
	obs := observe(r)
	ctx := t.Context()
	const storm = 5000
	for i := range storm {
		must(t, r.PodOOM(ctx, OOM{Namespace: "ml", PodName: "nb-0", PodUID: "uid-1", Container: "notebook", Comm: "bomb", PID: 1000 + i}))
	}
	must(t, r.NodeOOM(ctx, OOM{HostVictims: []string{"sshd (pid 812)"}}))
	must(t, r.PodPressureKill(ctx, PressureKill{Namespace: "ml", PodName: "nb-0", PodUID: "uid-1", Container: "notebook", Comm: "python3", PID: 7, Scope: ScopeNode}))
	evs := waitFor(t, f, func(m map[string]event) bool {
		var node, kill bool
		for _, e := range m {
			node = node || e.Reason == ReasonHostOOMKill
			kill = kill || e.Reason == ReasonPressureKill
		}
		return node && kill
	})
	// Every report of the storm is an Event's count or a counted drop.
	obs.wait(t, "the storm accounted for", func(d map[DropReason]int) bool {
		evs, _ := f.snapshot()
		n := 0
		for _, e := range evs {
			if e.Reason == ReasonOOMKilledProcess {
				n += int(e.Count)
			}
		}
		evs2 := n + d[DropRateLimited]
		return evs2 == storm
	})
	if d := obs.drops(); d[DropQueueFull] != 0 {
		t.Errorf("drops %v: the storm filled the queue", d)
	}
	t.Logf("storm of %d kills -> %d Event objects, drops %v", storm, len(evs), obs.drops())
}

// TestReporterNodePressure: a refusal at node scope is an Event on the
// Node, saying why nothing was ended.
func TestReporterNodePressure(t *testing.T) {
	f := &fakeAPI{token: "tok-1"}
	r := startReporter(t, f, nil)
	k := PressureKill{Scope: ScopeNode, Available: 6, Total: 100, StallPct: -1, Outcome: OutcomeNotActed,
		Why: "no_growth: no target container's committed memory is growing"}
	must(t, r.NodePressure(t.Context(), k))
	evs := waitFor(t, f, func(m map[string]event) bool { return len(m) == 1 })
	for key, e := range evs {
		if !strings.HasPrefix(key, "default/node-a.") || e.InvolvedObject != (objectRef{Kind: "Node", Name: "node-a", UID: "node-a", APIVersion: "v1"}) ||
			e.Reason != ReasonPressureNotActed || e.Type != "Warning" {
			t.Errorf("%s: %+v", key, e)
		}
		want := "podwarden ended nothing: no kill could give the memory back: node memory low: 6% available (6 B of 100 B); why: no_growth: no target container's committed memory is growing"
		if e.Message != want {
			t.Errorf("message\n%s\nwant\n%s", e.Message, want)
		}
	}
	if _, reqs := f.snapshot(); count(reqs, "GET") != 0 {
		t.Errorf("a node Event read a pod: %v", reqs)
	}
}

// TestReporterClosedContext: a caller whose context is done queues
// nothing.
func TestReporterClosedContext(t *testing.T) {
	f := &fakeAPI{token: "tok-1"}
	r := startReporter(t, f, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := r.NodeOOM(ctx, OOM{}); err == nil {
		t.Error("want the context's error")
	}
}
