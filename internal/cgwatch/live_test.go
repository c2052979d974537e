package cgwatch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// memoryV1 is the cgroup v1 memory hierarchy the live test uses.
const memoryV1 = "/sys/fs/cgroup/memory"

// nextUnder returns the next event below dir, skipping the rest of the
// host's cgroup activity, and when it was received.
func nextUnder(t *testing.T, w *Watcher, dir string) (Event, time.Time) {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("events closed: %v", w.Err())
			}
			if ev.Dir == dir || filepath.Dir(ev.Dir) == dir || len(ev.Dir) > len(dir) && ev.Dir[:len(dir)+1] == dir+"/" {
				return ev, time.Now()
			}
		case <-timeout:
			t.Fatalf("no event below %s within 5s", dir)
		}
	}
}

// TestLiveCgroupV1 watches the real memory hierarchy, as the agent does,
// and checks that cgroupfs reports mkdir and rmdir of cgroups through
// inotify, with the latency from the syscall to the event.
func TestLiveCgroupV1(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("creating cgroups needs root")
	}
	if _, err := os.Stat(filepath.Join(memoryV1, "memory.limit_in_bytes")); err != nil {
		t.Skipf("no cgroup v1 memory controller at %s: %v", memoryV1, err)
	}
	base := filepath.Join(memoryV1, fmt.Sprintf("podwarden-cgwatch-%d", os.Getpid()))
	a, b := filepath.Join(base, "a"), filepath.Join(base, "a", "b")
	t.Cleanup(func() {
		// Children first: cgroupfs removes only empty cgroups.
		for _, d := range []string{filepath.Join(base, "lat"), b, a, base} {
			if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
				t.Errorf("cleaning up %s: %v", d, err)
			}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := Watch(ctx, memoryV1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	start := time.Now()
	if err := os.Mkdir(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if ev, at := nextUnder(t, w, base); ev != (Event{Created, base}) {
		t.Fatalf("got %v, want %s created", ev, base)
	} else {
		t.Logf("mkdir %s to event: %v", base, at.Sub(start))
	}

	// Nested in one go, as runtimes do: b exists before a is watched.
	if err := os.MkdirAll(b, 0o755); err != nil {
		t.Fatal(err)
	}
	var got []Event
	for range 2 {
		ev, _ := nextUnder(t, w, base)
		got = append(got, ev)
	}
	if want := created(a, b); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}

	// Latency over repeated mkdir/rmdir of one cgroup.
	lat := filepath.Join(base, "lat")
	var mk, rm []time.Duration
	for range 50 {
		t0 := time.Now()
		if err := os.Mkdir(lat, 0o755); err != nil {
			t.Fatal(err)
		}
		if ev, at := nextUnder(t, w, base); ev != (Event{Created, lat}) {
			t.Fatalf("got %v, want %s created", ev, lat)
		} else {
			mk = append(mk, at.Sub(t0))
		}
		t0 = time.Now()
		if err := os.Remove(lat); err != nil {
			t.Fatal(err)
		}
		if ev, at := nextUnder(t, w, base); ev != (Event{Removed, lat}) {
			t.Fatalf("got %v, want %s removed", ev, lat)
		} else {
			rm = append(rm, at.Sub(t0))
		}
	}
	slices.Sort(mk)
	slices.Sort(rm)
	t.Logf("cgroup v1 syscall start to event over %d runs: mkdir median %v max %v; rmdir median %v max %v",
		len(mk), mk[len(mk)/2], mk[len(mk)-1], rm[len(rm)/2], rm[len(rm)-1])

	for _, d := range []string{b, a, base} {
		if err := os.Remove(d); err != nil {
			t.Fatal(err)
		}
		if ev, _ := nextUnder(t, w, base); ev != (Event{Removed, d}) {
			t.Fatalf("got %v, want %s removed", ev, d)
		}
	}
	if w.Overflows() != 0 {
		t.Logf("%d overflows while watching the host tree", w.Overflows())
	}
}
