package agent

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Liveness means protection: the loop's passes keep their bounds or
// /healthz fails and says where the loop is stuck; a slow dependency is
// named without failing it.
func TestHealthBounds(t *testing.T) {
	var h health
	h.init(2*time.Second, 10*time.Second)
	m := NewMetrics(nil)
	if got := h.check(time.Now()); !got.Protecting {
		t.Fatalf("before the first pass: %+v", got)
	}
	h.passDone(true)
	h.enter("host scan")
	now := time.Now()
	if got := h.check(now.Add(10 * time.Second)); !got.Protecting || len(got.Slow) != 0 {
		t.Fatalf("within bounds: %+v", got)
	}
	got := h.check(now.Add(40 * time.Second))
	if got.Protecting || !strings.Contains(got.Stalled, `"host scan"`) {
		t.Fatalf("a fast pass 40s late: %+v, want failing and naming the step", got)
	}
	dep := h.dependency("kube-apiserver", m)
	dep.begin("read pod a/b")
	if got := h.check(time.Now().Add(3 * time.Second)); len(got.Slow) != 1 || !strings.Contains(got.Slow[0], "kube-apiserver: read pod a/b has had no answer") {
		t.Fatalf("slow call: %+v", got.Slow)
	}
	dep.end(errors.New("context deadline exceeded"))
	if got := h.check(time.Now()); len(got.Slow) != 1 || !strings.Contains(got.Slow[0], "last call failed") {
		t.Fatalf("failed call: %+v", got.Slow)
	}
	dep.end(nil)
	if got := h.check(time.Now()); len(got.Slow) != 0 {
		t.Fatalf("recovered: %+v", got.Slow)
	}
}

// The largest intervals allowed give bounds that do not overflow.
func TestHealthBoundsAtTheLimits(t *testing.T) {
	var h health
	h.init(MaxFastInterval, 24*time.Hour)
	if h.fastBound <= 0 || h.fullBound <= 0 || h.fullBound < 72*time.Hour {
		t.Fatalf("bounds %v %v", h.fastBound, h.fullBound)
	}
}
