package cgwatch

import (
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeKernel stands in for inotify on cgroupfs, which a test cannot
// drive event by event: a watch names one incarnation of a directory, and
// removing the directory leaves the watch in place (no IN_IGNORED) until
// rmWatch, as cgroupfs does. The directories themselves are real, so the
// tree's listings read a real filesystem.
type fakeKernel struct {
	t      *testing.T
	next   int32
	byPath map[string]int32 // the watch on the directory now at a path
	active map[int32]string // every watch held, with the path it was added for
}

func newFakeKernel(t *testing.T) *fakeKernel {
	return &fakeKernel{t: t, byPath: map[string]int32{}, active: map[int32]string{}}
}

func (k *fakeKernel) addWatch(dir string, _ bool) (int32, error) {
	if _, err := os.Lstat(dir); err != nil {
		return -1, err
	}
	if wd, ok := k.byPath[dir]; ok {
		if _, held := k.active[wd]; held {
			return wd, nil
		}
	}
	k.next++
	k.byPath[dir], k.active[k.next] = k.next, dir
	return k.next, nil
}

func (k *fakeKernel) rmWatch(wd int32) { delete(k.active, wd) }

// rmdir removes dir without telling the tree; its watch stays.
func (k *fakeKernel) rmdir(dir string) {
	k.t.Helper()
	if err := os.Remove(dir); err != nil {
		k.t.Fatal(err)
	}
	delete(k.byPath, dir)
}

func (k *fakeKernel) rename(from, to string) {
	k.t.Helper()
	if err := os.Rename(from, to); err != nil {
		k.t.Fatal(err)
	}
	for p, wd := range k.byPath {
		if p == from || strings.HasPrefix(p, from+"/") {
			delete(k.byPath, p)
			if strings.HasPrefix(to, filepath.Dir(from)) {
				k.byPath[to+strings.TrimPrefix(p, from)] = wd
			}
		}
	}
}

// heldPaths are the paths of the watches held, relative to root.
func (k *fakeKernel) heldPaths(root string) []string {
	var out []string
	for _, p := range k.active {
		rel, _ := filepath.Rel(root, p)
		out = append(out, rel)
	}
	slices.Sort(out)
	return out
}

// TestTreeFollowsRemovals drives the tree with the events cgroupfs sends
// (a parent's IN_DELETE or IN_MOVED_FROM, never IN_IGNORED), with events
// lost, and with no events at all (the reconcile), and checks the watches
// it still holds against the directories that exist.
func TestTreeFollowsRemovals(t *testing.T) {
	type env struct {
		k    *fakeKernel
		tr   *tree
		root string
		emit func(Event) bool
	}
	// ev is an event from the watch on parent about its entry name.
	ev := func(e env, mask uint32, parent, name string) {
		t.Helper()
		d, ok := e.tr.paths[filepath.Join(e.root, parent)]
		if !ok {
			t.Fatalf("%s is not watched", parent)
		}
		if err := e.tr.apply(rawEvent{wd: d.wd, mask: mask | unix.IN_ISDIR, name: name}, e.emit, func() {}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(e env) {
		t.Helper()
		if err := e.tr.check(e.emit); err != nil {
			t.Fatal(err)
		}
	}
	tests := map[string]struct {
		act        func(e env)
		wantEvents []string // "removed a/b", "created a/b", in order
		wantHeld   []string
	}{
		"rmdir reported by the parent": {
			act: func(e env) {
				e.k.rmdir(filepath.Join(e.root, "pod", "c1"))
				ev(e, unix.IN_DELETE, "pod", "c1")
				e.k.rmdir(filepath.Join(e.root, "pod", "c2"))
				ev(e, unix.IN_DELETE, "pod", "c2")
				e.k.rmdir(filepath.Join(e.root, "pod"))
				ev(e, unix.IN_DELETE, ".", "pod")
			},
			wantEvents: []string{"removed pod/c1", "removed pod/c2", "removed pod"},
			wantHeld:   []string{".", "keep"},
		},
		"children's events lost: the subtree goes at once": {
			act: func(e env) {
				for _, d := range []string{"pod/c1", "pod/c2", "pod"} {
					e.k.rmdir(filepath.Join(e.root, d))
				}
				ev(e, unix.IN_DELETE, ".", "pod")
			},
			wantEvents: []string{"removed pod/c1", "removed pod/c2", "removed pod"},
			wantHeld:   []string{".", "keep"},
		},
		"moved out of the tree": {
			act: func(e env) {
				e.k.rename(filepath.Join(e.root, "pod"), filepath.Join(filepath.Dir(e.root), "elsewhere"))
				ev(e, unix.IN_MOVED_FROM, ".", "pod")
			},
			wantEvents: []string{"removed pod/c1", "removed pod/c2", "removed pod"},
			wantHeld:   []string{".", "keep"},
		},
		"renamed within the tree": {
			act: func(e env) {
				e.k.rename(filepath.Join(e.root, "pod"), filepath.Join(e.root, "moved"))
				ev(e, unix.IN_MOVED_FROM, ".", "pod")
				ev(e, unix.IN_MOVED_TO, ".", "moved")
			},
			wantEvents: []string{"removed pod/c1", "removed pod/c2", "removed pod", "created moved", "created moved/c1", "created moved/c2"},
			wantHeld:   []string{".", "keep", "moved", "moved/c1", "moved/c2"},
		},
		"no events: the reconcile drops what is gone": {
			act: func(e env) {
				for _, d := range []string{"pod/c1", "pod/c2", "pod"} {
					e.k.rmdir(filepath.Join(e.root, d))
				}
				check(e)
			},
			wantEvents: []string{"removed pod/c2", "removed pod/c1", "removed pod"},
			wantHeld:   []string{".", "keep"},
		},
		"no events: the reconcile redoes a directory made again": {
			act: func(e env) {
				e.k.rmdir(filepath.Join(e.root, "pod", "c1"))
				if err := os.MkdirAll(filepath.Join(e.root, "pod", "c1", "sub"), 0o755); err != nil {
					t.Fatal(err)
				}
				check(e)
			},
			wantEvents: []string{"removed pod/c1", "created pod/c1", "created pod/c1/sub"},
			wantHeld:   []string{".", "keep", "pod", "pod/c1", "pod/c1/sub", "pod/c2"},
		},
		"IN_IGNORED after the tree removed the watch": {
			act: func(e env) {
				wd := e.tr.paths[filepath.Join(e.root, "pod", "c1")].wd
				e.k.rmdir(filepath.Join(e.root, "pod", "c1"))
				ev(e, unix.IN_DELETE, "pod", "c1")
				if err := e.tr.apply(rawEvent{wd: wd, mask: unix.IN_IGNORED}, e.emit, func() {}); err != nil {
					t.Fatal(err)
				}
				check(e)
			},
			wantEvents: []string{"removed pod/c1"},
			wantHeld:   []string{".", "keep", "pod", "pod/c2"},
		},
		"deletion of a name never watched": {
			act: func(e env) {
				ev(e, unix.IN_DELETE, ".", "never")
			},
			wantHeld: []string{".", "keep", "pod", "pod/c1", "pod/c2"},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			for _, d := range []string{"pod/c1", "pod/c2", "keep"} {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			k := newFakeKernel(t)
			tr := newTree([]string{root}, k.addWatch, k.rmWatch)
			if err := tr.add(root, false, nil); err != nil {
				t.Fatal(err)
			}
			var got []string
			emit := func(e Event) bool {
				rel, _ := filepath.Rel(root, e.Dir)
				got = append(got, e.Op.String()+" "+rel)
				return true
			}
			tt.act(env{k: k, tr: &tr, root: root, emit: emit})
			if !slices.Equal(got, tt.wantEvents) {
				t.Errorf("events %q, want %q", got, tt.wantEvents)
			}
			if held := k.heldPaths(root); !slices.Equal(held, tt.wantHeld) {
				t.Errorf("watches held on %q, want %q", held, tt.wantHeld)
			}
			if tr.watches() != len(k.active) {
				t.Errorf("watches() = %d, the kernel holds %d", tr.watches(), len(k.active))
			}
			// The tree's own view agrees with the filesystem.
			var onDisk []string
			_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					onDisk = append(onDisk, p)
				}
				return nil
			})
			if known := slices.Sorted(maps.Keys(tr.paths)); !slices.Equal(known, onDisk) {
				t.Errorf("tree knows %q, disk has %q", known, onDisk)
			}
		})
	}
}

// TestTreeChurn makes and removes pods through events only, many times:
// the watches held stay one per directory.
func TestTreeChurn(t *testing.T) {
	root := t.TempDir()
	k := newFakeKernel(t)
	tr := newTree([]string{root}, k.addWatch, k.rmWatch)
	if err := tr.add(root, false, nil); err != nil {
		t.Fatal(err)
	}
	emit := func(Event) bool { return true }
	apply := func(parent, name string, mask uint32) {
		if err := tr.apply(rawEvent{wd: tr.paths[parent].wd, mask: mask | unix.IN_ISDIR, name: name}, emit, func() {}); err != nil {
			t.Fatal(err)
		}
	}
	for range 500 {
		pod := filepath.Join(root, "pod")
		if err := os.MkdirAll(filepath.Join(pod, "c"), 0o755); err != nil {
			t.Fatal(err)
		}
		apply(root, "pod", unix.IN_CREATE) // the listing finds c
		k.rmdir(filepath.Join(pod, "c"))
		apply(pod, "c", unix.IN_DELETE)
		k.rmdir(pod)
		apply(root, "pod", unix.IN_DELETE)
	}
	if len(k.active) != 1 || tr.watches() != 1 {
		t.Fatalf("after 500 pods: the kernel holds %d watches, the tree %d; want 1 (the root)", len(k.active), tr.watches())
	}
}

// TestReconcileFindsUnreportedChange changes what a watched path names
// without any inotify event (a mount over it, as on cgroupfs a removal
// sends none to the removed directory): the periodic reconcile must see it,
// report it and watch the new directory.
func TestReconcileFindsUnreportedChange(t *testing.T) {
	root := t.TempDir()
	a := filepath.Join(root, "a")
	mkdirAll(t, a)
	w, err := watchEvery(t.Context(), 100*time.Millisecond, []string{root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	if err := unix.Mount("podwarden-test", a, "tmpfs", 0, ""); err != nil {
		t.Skipf("mounting over a watched directory: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(a, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", a, err)
		}
	})
	expect(t, w, Event{Removed, a}, Event{Created, a})
	mkdirAll(t, filepath.Join(a, "new"))
	expect(t, w, created(filepath.Join(a, "new"))...)
	if got := w.Watches(); got != 3 {
		t.Errorf("Watches() = %d, want 3 (root, a, a/new)", got)
	}
	w.Close()
	if got := w.Watches(); got != 0 {
		t.Errorf("Watches() = %d after Close, want 0", got)
	}
}
