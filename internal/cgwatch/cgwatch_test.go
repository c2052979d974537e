package cgwatch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"podwarden/internal/streamtest"
)

func watch(t *testing.T, roots ...string) *Watcher {
	t.Helper()
	w, err := Watch(context.Background(), roots...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func mkdirAll(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// receive reads events until the watcher has been quiet for quiet, or
// until limit, and returns them in order.
func receive(t *testing.T, w *Watcher, quiet, limit time.Duration) []Event {
	t.Helper()
	var got []Event
	deadline := time.After(limit)
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("events closed after %v: %v", got, w.Err())
			}
			got = append(got, ev)
		case <-time.After(quiet):
			return got
		case <-deadline:
			return got
		}
	}
}

// expect reads events until every wanted one arrived (in any order) and
// the watcher is quiet, and fails on a missing, unwanted or repeated one.
func expect(t *testing.T, w *Watcher, want ...Event) []Event {
	t.Helper()
	var got []Event
	missing := map[Event]bool{}
	for _, ev := range want {
		missing[ev] = true
	}
	deadline := time.After(time.Minute)
	for len(missing) > 0 {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("events closed (%v) with %d missing, e.g. %v", w.Err(), len(missing), any1(missing))
			}
			got = append(got, ev)
			delete(missing, ev)
		case <-deadline:
			t.Fatalf("timed out with %d events missing, e.g. %v (got %d)", len(missing), any1(missing), len(got))
		}
	}
	got = append(got, receive(t, w, 100*time.Millisecond, time.Second)...)
	if len(got) != len(want) {
		seen := map[Event]int{}
		for _, ev := range got {
			if seen[ev]++; seen[ev] == 2 || !slices.Contains(want, ev) {
				t.Errorf("unwanted or repeated event %v", ev)
			}
		}
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	return got
}

func any1(m map[Event]bool) Event {
	for ev := range m {
		return ev
	}
	return Event{}
}

func created(dirs ...string) []Event {
	evs := make([]Event, len(dirs))
	for i, d := range dirs {
		evs[i] = Event{Created, d}
	}
	return evs
}

// parentsFirst fails if a directory is reported before its parent.
func parentsFirst(t *testing.T, root string, evs []Event) {
	t.Helper()
	seen := map[string]bool{root: true}
	for _, ev := range evs {
		if ev.Op == Created && !seen[filepath.Dir(ev.Dir)] {
			t.Errorf("%s reported before its parent", ev.Dir)
		}
		seen[ev.Dir] = true
	}
}

func TestNestedCreatesAreAllReported(t *testing.T) {
	root := t.TempDir()
	w := watch(t, root)
	// MkdirAll makes each level right after the previous one, faster than
	// the watcher adds watches: the deeper levels exist before their
	// parent is watched.
	var want []string
	for i := range 50 {
		p := filepath.Join(root, fmt.Sprint("pod", i))
		mkdirAll(t, filepath.Join(p, "ctr", "sub", "leaf"))
		want = append(want, p, filepath.Join(p, "ctr"), filepath.Join(p, "ctr", "sub"), filepath.Join(p, "ctr", "sub", "leaf"))
	}
	got := expect(t, w, created(want...)...)
	parentsFirst(t, root, got)
}

// TestGapBeforeWatch makes directories at the worst moments: before a new
// directory's watch exists (no event will ever come for them) and between
// its watch and its listing (an event and the listing both see them).
func TestGapBeforeWatch(t *testing.T) {
	root := t.TempDir()
	a := filepath.Join(root, "a")
	testHookBeforeWatch = func(dir string) {
		if dir == a {
			mkdirAll(t, filepath.Join(a, "early", "deeper"), filepath.Join(a, "early2"))
		}
	}
	testHookBeforeList = func(dir string) {
		if dir == a {
			mkdirAll(t, filepath.Join(a, "late", "deeper"))
		}
	}
	t.Cleanup(func() { testHookBeforeWatch, testHookBeforeList = nil, nil })
	w := watch(t, root)
	mkdirAll(t, a)
	got := expect(t, w, created(a, filepath.Join(a, "early"), filepath.Join(a, "early", "deeper"), filepath.Join(a, "early2"),
		filepath.Join(a, "late"), filepath.Join(a, "late", "deeper"))...)
	parentsFirst(t, root, got)
	// The new directories are watched too.
	mkdirAll(t, filepath.Join(a, "early", "deeper", "x"))
	expect(t, w, created(filepath.Join(a, "early", "deeper", "x"))...)
}

func TestRemovedDeepestFirst(t *testing.T) {
	root := t.TempDir()
	w := watch(t, root)
	a, b, c := filepath.Join(root, "a"), filepath.Join(root, "a", "b"), filepath.Join(root, "a", "b", "c")
	mkdirAll(t, c)
	expect(t, w, created(a, b, c)...)
	if err := os.RemoveAll(a); err != nil {
		t.Fatal(err)
	}
	got := expect(t, w, Event{Removed, c}, Event{Removed, b}, Event{Removed, a})
	if got[0].Dir != c || got[2].Dir != a {
		t.Errorf("removal order %v, want deepest first", got)
	}
}

// TestRecreatedFastStaysConsistent removes and remakes one directory in a
// tight loop: whatever the watcher saw, its reports must alternate, end in
// Created, and the last incarnation must be the one watched.
func TestRecreatedFastStaysConsistent(t *testing.T) {
	root := t.TempDir()
	w := watch(t, root)
	a := filepath.Join(root, "a")
	for range 200 {
		mkdirAll(t, filepath.Join(a, "b"))
		if err := os.RemoveAll(a); err != nil {
			t.Fatal(err)
		}
	}
	mkdirAll(t, filepath.Join(a, "b"))
	state := map[string]Op{}
	for _, ev := range receive(t, w, 200*time.Millisecond, 10*time.Second) {
		if state[ev.Dir] == ev.Op {
			t.Fatalf("%v reported twice in a row", ev)
		}
		state[ev.Dir] = ev.Op
	}
	if state[a] != Created || state[filepath.Join(a, "b")] != Created {
		t.Fatalf("final state %v, want both created", state)
	}
	mkdirAll(t, filepath.Join(a, "b", "c"))
	expect(t, w, created(filepath.Join(a, "b", "c"))...)
}

func TestRename(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	w := watch(t, root)
	a, z := filepath.Join(root, "a"), filepath.Join(root, "z")
	mkdirAll(t, filepath.Join(a, "b", "c"))
	expect(t, w, created(a, filepath.Join(a, "b"), filepath.Join(a, "b", "c"))...)

	if err := os.Rename(a, z); err != nil {
		t.Fatal(err)
	}
	expect(t, w, Event{Removed, a}, Event{Removed, filepath.Join(a, "b")}, Event{Removed, filepath.Join(a, "b", "c")},
		Event{Created, z}, Event{Created, filepath.Join(z, "b")}, Event{Created, filepath.Join(z, "b", "c")})
	// Events below the renamed tree carry the new name.
	mkdirAll(t, filepath.Join(z, "b", "c", "d"))
	expect(t, w, created(filepath.Join(z, "b", "c", "d"))...)

	// Moved out: reported removed, and no longer followed.
	if err := os.Rename(z, filepath.Join(outside, "z")); err != nil {
		t.Fatal(err)
	}
	expect(t, w, Event{Removed, z}, Event{Removed, filepath.Join(z, "b")}, Event{Removed, filepath.Join(z, "b", "c")},
		Event{Removed, filepath.Join(z, "b", "c", "d")})
	mkdirAll(t, filepath.Join(outside, "z", "new"))
	if evs := receive(t, w, 200*time.Millisecond, time.Second); len(evs) != 0 {
		t.Fatalf("events for a directory moved out: %v", evs)
	}
}

func TestSeveralRootsAndExistingDirs(t *testing.T) {
	r1, r2 := t.TempDir(), t.TempDir()
	mkdirAll(t, filepath.Join(r1, "old", "deep"))
	w := watch(t, r1, r2)
	mkdirAll(t, filepath.Join(r1, "old", "deep", "new"), filepath.Join(r2, "x"))
	expect(t, w, created(filepath.Join(r1, "old", "deep", "new"), filepath.Join(r2, "x"))...)
}

// TestOverflowRecovers lets the kernel queue overflow while the consumer
// is away: Overflows must count it, and the watcher must find and watch
// every directory whose event was dropped, including one removed and made
// again in the dropped range.
func TestOverflowRecovers(t *testing.T) {
	if testing.Short() {
		t.Skip("makes 20000 directories")
	}
	root := t.TempDir()
	again := filepath.Join(root, "again")
	mkdirAll(t, again)
	w := watch(t, root)
	flat := filepath.Join(root, "flat")
	mkdirAll(t, flat)
	const n = 20000 // beyond the default max_queued_events (16384) plus our channel
	want := map[string]bool{flat: true}
	for i := range n {
		d := filepath.Join(flat, fmt.Sprint(i))
		mkdirAll(t, d)
		want[d] = true
	}
	if err := os.Remove(again); err != nil {
		t.Fatal(err)
	}
	mkdirAll(t, again)

	// Read until every directory and both events of the remade one came
	// (a resync of 20000 directories on a busy machine can pause for
	// seconds, so no quiet window ends the wait), then a little longer to
	// catch repeats.
	seen := map[string]int{}
	var againOps []Op
	handle := func(ev Event) {
		if ev.Dir == again {
			againOps = append(againOps, ev.Op)
			return
		}
		if ev.Op != Created || !want[ev.Dir] {
			t.Errorf("unexpected %v", ev)
		}
		seen[ev.Dir]++
	}
	deadline := time.After(5 * time.Minute)
	for len(seen) < len(want) || len(againOps) < 2 {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("events closed with %d of %d directories seen: %v", len(seen), len(want), w.Err())
			}
			handle(ev)
		case <-deadline:
			t.Fatalf("timed out with %d of %d directories seen, remade directory %v (%d overflows)", len(seen), len(want), againOps, w.Overflows())
		}
	}
	for _, ev := range receive(t, w, 500*time.Millisecond, 5*time.Second) {
		handle(ev)
	}
	if w.Overflows() == 0 {
		t.Skipf("no overflow happened (max_queued_events above %d?)", n)
	}
	for d := range want {
		if seen[d] != 1 {
			t.Fatalf("%s reported %d times", d, seen[d])
		}
	}
	if !slices.Equal(againOps, []Op{Removed, Created}) {
		t.Errorf("events for the remade directory: %v, want removed then created", againOps)
	}
	// Directories found by the resync are watched.
	mkdirAll(t, filepath.Join(flat, fmt.Sprint(n-1), "x"), filepath.Join(again, "y"))
	expect(t, w, created(filepath.Join(flat, fmt.Sprint(n-1), "x"), filepath.Join(again, "y"))...)
	t.Logf("%d overflows, %d directories recovered", w.Overflows(), len(seen))
}

func TestRootRemovedEndsTheWatcher(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	mkdirAll(t, root)
	w := watch(t, root)
	if err := os.Remove(root); err != nil {
		t.Fatal(err)
	}
	var got []Event
	timeout := time.After(30 * time.Second)
	for done := false; !done; {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				done = true
				break
			}
			got = append(got, ev)
		case <-timeout:
			t.Fatalf("events not closed after the only root was removed (got %v)", got)
		}
	}
	if !slices.Equal(got, []Event{{Removed, root}}) {
		t.Errorf("events %v, want only %s removed", got, root)
	}
	if err := w.Err(); err == nil || !strings.Contains(err.Error(), "removed") {
		t.Errorf("Err = %v, want one saying the roots were removed", err)
	}
}

func TestWatchErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		roots []string
		want  string
	}{
		"missing root":  {[]string{t.TempDir(), "/nonexistent/cgroup"}, "/nonexistent/cgroup"},
		"file as root":  {[]string{file}, file + ": not a directory"},
		"no root given": {nil, "no root"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			w, err := Watch(context.Background(), tt.roots...)
			if err == nil {
				w.Close()
				t.Fatal("Watch succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to name %q", err, tt.want)
			}
		})
	}
}

// TestCloseWithBlockedConsumer: Close must not hang while the goroutine is
// blocked handing an event to a consumer that stopped reading.
func TestCloseWithBlockedConsumer(t *testing.T) {
	before := runtime.NumGoroutine()
	root := t.TempDir()
	w, err := Watch(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	for i := range eventBuf + 200 {
		mkdirAll(t, filepath.Join(root, fmt.Sprint(i)))
	}
	time.Sleep(50 * time.Millisecond) // let the goroutine fill the channel and block
	streamtest.CloseBlocked(t, w)
	streamtest.WaitGoroutines(t, before)
}

func TestCancelEndsTheWatcher(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := Watch(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if n := streamtest.Cancelled(t, w, w.done); n > 0 {
		t.Errorf("%d events after cancel", n)
	}
	streamtest.WaitGoroutines(t, before)
}

// BenchmarkMkdirToEvent measures one mkdir until its event is received,
// then one rmdir until its event: the round trip through inotify and the
// watcher.
func BenchmarkMkdirToEvent(b *testing.B) {
	root := b.TempDir()
	w, err := Watch(context.Background(), root)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	d := filepath.Join(root, "c")
	for b.Loop() {
		if err := os.Mkdir(d, 0o755); err != nil {
			b.Fatal(err)
		}
		if ev := <-w.Events(); ev.Dir != d || ev.Op != Created {
			b.Fatal(ev)
		}
		if err := os.Remove(d); err != nil {
			b.Fatal(err)
		}
		if ev := <-w.Events(); ev.Dir != d || ev.Op != Removed {
			b.Fatal(ev)
		}
	}
}
