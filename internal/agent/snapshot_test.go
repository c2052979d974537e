package agent

import (
	"context"
	"reflect"
	"testing"

	"podwarden/internal/cgwatch"
)

// TestTargetSnapshot: the snapshot another goroutine reads follows the
// loop's target set, including a container removed between passes, and
// its generation changes with it, so a reader knows when to look again.
func TestTargetSnapshot(t *testing.T) {
	n := seedLikeNode(t)
	a := newTestAgent(t, n, true)
	if got, gen := a.TargetSnapshot(); got != nil || gen != 0 {
		t.Errorf("before the first pass: %+v, generation %d", got, gen)
	}
	if _, err := a.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := a.Targets()
	for i := range want {
		want[i].st = nil // the loop's state is not handed out
	}
	got, gen1 := a.TargetSnapshot()
	if !reflect.DeepEqual(got, want) || len(got) != 1 || gen1 == 0 {
		t.Fatalf("snapshot %+v (generation %d), targets %+v", got, gen1, want)
	}
	// Read from another goroutine while the loop changes the set (run
	// with -race to see it is safe).
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			_, _ = a.TargetSnapshot()
		}
	}()
	a.onDir(context.Background(), cgA, cgwatch.Removed)
	<-done
	if got, gen := a.TargetSnapshot(); len(got) != 0 || gen == gen1 {
		t.Errorf("after the container's cgroup was removed: %+v, generation %d (was %d)", got, gen, gen1)
	}
}
