package cgwatch

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// kernelWatches counts the watches the kernel holds for w's inotify
// descriptor, as /proc shows them to anyone who looks (one "inotify wd:"
// line each).
func kernelWatches(t *testing.T, w *Watcher) int {
	t.Helper()
	var fd uintptr
	if err := w.raw.Control(func(f uintptr) { fd = f }); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if strings.HasPrefix(sc.Text(), "inotify wd:") {
			n++
		}
	}
	return n
}

// countDirs counts the directories under root, root included.
func countDirs(root string) int {
	n := 0
	_ = filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// removeTree removes the cgroups under dir, deepest first (cgroupfs
// removes only empty cgroups, and os.RemoveAll would try the files).
func removeTree(t *testing.T, dir string) {
	t.Helper()
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	slices.Reverse(dirs)
	for _, d := range dirs {
		if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
			t.Errorf("cleaning up %s: %v", d, err)
		}
	}
}

// kubeletPods creates and removes 1,000 pods of two containers each
// (3,000 cgroups) below kubepods, 20 alive at a time, as the kubelet does.
func kubeletPods(t *testing.T, kubepods string) int {
	const (
		pods   = 1000
		window = 20
	)
	podDir := func(i int) string { return filepath.Join(kubepods, fmt.Sprintf("pod%08x-0000-4000-8000-%012x", i, i)) }
	containers := []string{"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"}
	remove := func(i int) {
		p := podDir(i)
		for _, c := range containers {
			if err := os.Remove(filepath.Join(p, c)); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	for i := range pods {
		for _, c := range containers {
			if err := os.MkdirAll(filepath.Join(podDir(i), c), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if i >= window {
			remove(i - window)
		}
	}
	for i := pods - window; i < pods; i++ {
		remove(i)
	}
	return pods * (1 + len(containers))
}

// hostileContainer is a container with writable cgroups doing its worst
// to the watch tree: deep chains made in one go (faster than watches are
// added), renamed (cgroup v1 allows it within a parent) and removed from
// under the new name, 150 times (3,150 cgroups).
func hostileContainer(t *testing.T, kubepods string) int {
	ctr := filepath.Join(kubepods, "pod11111111-2222-4333-8444-555555555555", strings.Repeat("ab", 32))
	if err := os.MkdirAll(ctr, 0o755); err != nil {
		t.Fatal(err)
	}
	const rounds, depth = 150, 20
	for i := range rounds {
		top := filepath.Join(ctr, fmt.Sprint("t", i))
		chain := top + strings.Repeat("/d", depth)
		if err := os.MkdirAll(chain, 0o755); err != nil {
			t.Fatal(err)
		}
		moved := filepath.Join(ctr, fmt.Sprint("r", i))
		if err := os.Rename(top, moved); err != nil {
			t.Fatal(err)
		}
		removeTree(t, moved)
	}
	return rounds * (depth + 1)
}

// TestLiveChurnLeavesNoWatches creates and removes over 3,000 real memory
// cgroups while watching the whole hierarchy, as the agent does. cgroupfs
// sends no IN_DELETE_SELF or IN_IGNORED on rmdir, so every watch the
// watcher does not remove itself stays in the kernel: the watches the
// kernel reports must come back to about one per live directory.
func TestLiveChurnLeavesNoWatches(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("creating cgroups needs root")
	}
	if _, err := os.Stat(filepath.Join(memoryV1, "memory.limit_in_bytes")); err != nil {
		t.Skipf("no cgroup v1 memory controller at %s: %v", memoryV1, err)
	}
	for name, churn := range map[string]func(*testing.T, string) int{
		"kubelet pods":      kubeletPods,
		"hostile container": hostileContainer,
	} {
		t.Run(name, func(t *testing.T) {
			base := filepath.Join(memoryV1, fmt.Sprintf("podwarden-churn-%d", os.Getpid()))
			kubepods := filepath.Join(base, "kubepods")
			t.Cleanup(func() { removeTree(t, base) })
			if err := os.MkdirAll(kubepods, 0o755); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			w, err := Watch(ctx, memoryV1)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			t.Logf("start: %d watches, %d directories", kernelWatches(t, w), countDirs(memoryV1))
			// The consumer keeps up, as the agent's loop does.
			drained := make(chan int, 1)
			go func() {
				n := 0
				for range w.Events() {
					n++
				}
				drained <- n
			}()

			start := time.Now()
			n := churn(t, kubepods)
			t.Logf("%d cgroups created and removed in %v", n, time.Since(start))

			// The watcher reads the removals asynchronously: wait for
			// it, with room for a loaded machine.
			deadline := time.Now().Add(2 * time.Minute)
			var kernel, live int
			for {
				live, kernel = countDirs(memoryV1), kernelWatches(t, w)
				// Equal counts mean the watcher caught up (or the host's
				// own cgroups moved meanwhile; the bound is checked
				// either way).
				if kernel <= live+64 && w.Watches() == kernel || time.Now().After(deadline) {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			t.Logf("end: %d watches in the kernel, Watches() %d, %d live directories, %d overflows", kernel, w.Watches(), live, w.Overflows())
			if kernel > live+64 {
				t.Errorf("the kernel holds %d watches for %d live directories: removed cgroups kept their watches", kernel, live)
			}
			if got := w.Watches(); got > live+64 {
				t.Errorf("Watches() = %d for %d live directories", got, live)
			}
			cancel()
			t.Logf("%d events read", <-drained)
		})
	}
}
