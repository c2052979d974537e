package cgwatch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func collect(t *testing.T, w *Watcher, want map[Event]bool) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for len(want) > 0 {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("watcher closed: %v", w.Err())
			}
			delete(want, ev)
		case <-timeout:
			t.Fatalf("missing events: %v", want)
		}
	}
}

func TestNestedCreateAndRemove(t *testing.T) {
	root := t.TempDir()
	w, err := Watch(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// MkdirAll creates a/b/c faster than the watcher can add a's watch:
	// b and c must still be reported.
	deep := filepath.Join(root, "a", "b", "c")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	want := map[Event]bool{}
	for _, d := range []string{"a", "a/b", "a/b/c"} {
		want[Event{Created, filepath.Join(root, d)}] = true
	}
	collect(t, w, want)
	// Many siblings in a burst.
	want = map[Event]bool{}
	for i := range 200 {
		d := filepath.Join(deep, fmt.Sprint(i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		want[Event{Created, d}] = true
	}
	collect(t, w, want)
	if err := os.Remove(filepath.Join(deep, "7")); err != nil {
		t.Fatal(err)
	}
	collect(t, w, map[Event]bool{{Removed, filepath.Join(deep, "7")}: true})
}

func TestWatchMissingRoot(t *testing.T) {
	_, err := Watch(context.Background(), "/nonexistent/cgroup")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/cgroup") {
		t.Fatalf("err = %v", err)
	}
}

func TestCloseEndsTheWatcher(t *testing.T) {
	w, err := Watch(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, ok := <-w.Events(); ok {
		t.Fatal("event after Close")
	}
	if w.Err() != nil {
		t.Fatal(w.Err())
	}
}

// TestLiveCgroupV1 checks that the real cgroup filesystem reports mkdir and
// rmdir through inotify.
func TestLiveCgroupV1(t *testing.T) {
	root := "/sys/fs/cgroup/memory"
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := os.Stat(filepath.Join(root, "memory.limit_in_bytes")); err != nil {
		t.Skip("no cgroup v1 memory controller at " + root)
	}
	base := filepath.Join(root, fmt.Sprintf("podwarden-cgwatch-%d", os.Getpid()))
	if err := os.Mkdir(base, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Remove(filepath.Join(base, "a", "b"))
		os.Remove(filepath.Join(base, "a"))
		os.Remove(base)
	})
	w, err := Watch(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	start := time.Now()
	if err := os.MkdirAll(filepath.Join(base, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	collect(t, w, map[Event]bool{{Created, filepath.Join(base, "a")}: true, {Created, filepath.Join(base, "a", "b")}: true})
	t.Logf("mkdir to both events: %v", time.Since(start))
	if err := os.Remove(filepath.Join(base, "a", "b")); err != nil {
		t.Fatal(err)
	}
	collect(t, w, map[Event]bool{{Removed, filepath.Join(base, "a", "b")}: true})
}
