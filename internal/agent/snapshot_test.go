package agent

import (
	"context"
	"reflect"
	"testing"

	"podwarden/internal/cgwatch"
)

// TestTargetSnapshot: the snapshot another goroutine reads follows the
// loop's target set, including a container removed between passes.
func TestTargetSnapshot(t *testing.T) {
	n := seedLikeNode(t)
	a := newTestAgent(t, n, true)
	if got := a.TargetSnapshot(); got != nil {
		t.Errorf("before the first pass: %+v", got)
	}
	if _, err := a.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := a.Targets()
	for i := range want {
		want[i].st = nil // the loop's state is not handed out
	}
	if got := a.TargetSnapshot(); !reflect.DeepEqual(got, want) || len(got) != 1 {
		t.Fatalf("snapshot %+v, targets %+v", got, want)
	}
	// Read from another goroutine while the loop changes the set (run
	// with -race to see it is safe).
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			_ = a.TargetSnapshot()
		}
	}()
	a.onDir(context.Background(), cgA, cgwatch.Removed)
	<-done
	if got := a.TargetSnapshot(); len(got) != 0 {
		t.Errorf("after the container's cgroup was removed: %+v", got)
	}
}
