package cgwatch

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// errStopped ends event handling when the consumer side is gone.
var errStopped = errors.New("watcher stopped")

// Test hooks, run when set. testHookBeforeWatch runs before a directory's
// watch is added: a subdirectory made then gets no event and must be found
// by the listing. testHookBeforeList runs between the watch and the
// listing: a subdirectory made then is both listed and evented and must be
// reported once.
var testHookBeforeWatch, testHookBeforeList func(dir string)

// tree is the watcher's bookkeeping: which directory each watch descriptor
// names, and which directories have been reported (or were there at
// start). Only one goroutine uses it at a time.
type tree struct {
	roots map[string]bool
	// wds maps a live watch to its directory. An entry outlives the
	// directory's removal until IN_IGNORED: events still queued for the
	// watch need its name.
	wds map[int32]string
	// paths holds the directories known to the consumer: reported as
	// Created (or present at start) and not yet reported as Removed. It
	// deduplicates a directory seen both by a listing and by a queued
	// IN_CREATE.
	paths map[string]int32

	addWatch func(dir string, root bool) (int32, error)
	rmWatch  func(wd int32)
}

func newTree(roots []string, add func(string, bool) (int32, error), rm func(int32)) tree {
	t := tree{roots: map[string]bool{}, wds: map[int32]string{}, paths: map[string]int32{}, addWatch: add, rmWatch: rm}
	for _, r := range roots {
		t.roots[r] = true
	}
	return t
}

// gone reports whether err means the directory no longer exists (or is no
// longer a directory): it was removed before we got to it, which the
// watch on its parent reports, so it is not an error.
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP)
}

// add watches dir, reports it if report is set, and then lists it and adds
// its subdirectories the same way. Listing after the watch exists closes
// the gap between dir's creation and its watch: a subdirectory made before
// the watch is found by the listing, one made after by the watch, one in
// both is deduplicated by paths.
func (t *tree) add(dir string, report bool, emit func(Event) bool) error {
	if _, ok := t.paths[dir]; ok {
		return nil
	}
	if testHookBeforeWatch != nil {
		testHookBeforeWatch(dir)
	}
	wd, err := t.addWatch(dir, t.roots[dir])
	if gone(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("watching %s: %w", dir, err)
	}
	t.wds[wd], t.paths[dir] = dir, wd
	if report && !emit(Event{Op: Created, Dir: dir}) {
		return errStopped
	}
	if testHookBeforeList != nil {
		testHookBeforeList(dir)
	}
	return t.list(dir, func(sub string) error { return t.add(sub, report, emit) })
}

// list calls fn for each subdirectory of dir. Symlinks are not followed.
func (t *tree) list(dir string, fn func(sub string) error) error {
	entries, err := os.ReadDir(dir)
	if err != nil && !gone(err) {
		return fmt.Errorf("listing %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := fn(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// apply handles one inotify event.
func (t *tree) apply(ev rawEvent, emit func(Event) bool, overflowed func()) error {
	if ev.mask&unix.IN_Q_OVERFLOW != 0 {
		overflowed()
		return t.resync(emit)
	}
	dir, ok := t.wds[ev.wd]
	if !ok {
		return nil // a watch already dropped, or the overflow event's wd -1
	}
	switch {
	case ev.mask&unix.IN_IGNORED != 0:
		// The watch is gone: its directory was removed, or rmWatch. The
		// path stays known: the kernel may queue this before the parent's
		// IN_DELETE, which is the event that reports the removal.
		delete(t.wds, ev.wd)
		if len(t.wds) == 0 {
			return errors.New("every watched root was removed")
		}
		return nil
	case ev.mask&unix.IN_DELETE_SELF != 0:
		// A subdirectory's removal is reported by its parent's IN_DELETE;
		// a root has no watched parent.
		if t.roots[dir] && t.paths[dir] == ev.wd {
			delete(t.paths, dir)
			if !emit(Event{Op: Removed, Dir: dir}) {
				return errStopped
			}
		}
		return nil
	case ev.mask&unix.IN_ISDIR == 0 || ev.name == "" || strings.Contains(ev.name, "/"):
		return nil
	}
	path := filepath.Join(dir, ev.name)
	switch {
	case ev.mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0:
		return t.add(path, true, emit)
	case ev.mask&unix.IN_DELETE != 0:
		// Only empty directories can be removed (rmdir), so this is the
		// last event about path. A directory never reported (created and
		// removed before its watch) is not reported now either.
		if _, ok := t.paths[path]; !ok {
			return nil
		}
		delete(t.paths, path)
		if !emit(Event{Op: Removed, Dir: path}) {
			return errStopped
		}
	case ev.mask&unix.IN_MOVED_FROM != 0:
		return t.forgetTree(path, emit)
	}
	return nil
}

// forgetTree reports dir and every known directory below it as removed,
// deepest first, and drops their watches: after a rename those watches
// would report events under names that no longer exist. The new name, if
// inside the trees, arrives as IN_MOVED_TO and is added afresh.
func (t *tree) forgetTree(dir string, emit func(Event) bool) error {
	var below []string
	for p := range t.paths {
		if p == dir || strings.HasPrefix(p, dir+"/") {
			below = append(below, p)
		}
	}
	slices.Sort(below)
	slices.Reverse(below)
	for _, p := range below {
		wd := t.paths[p]
		delete(t.paths, p)
		delete(t.wds, wd)
		t.rmWatch(wd)
		if !emit(Event{Op: Removed, Dir: p}) {
			return errStopped
		}
	}
	return nil
}

// resync brings the watches back in line with the filesystem after the
// kernel dropped events. A known directory whose watch can no longer be
// added is gone; one whose watch comes back with a new descriptor was
// removed and made again (inotify gives an inode one descriptor, so an
// unchanged directory gets its old one back). Then every tree is listed
// again for directories that were never seen.
func (t *tree) resync(emit func(Event) bool) error {
	known := make([]string, 0, len(t.paths))
	for p := range t.paths {
		known = append(known, p)
	}
	slices.Sort(known)
	slices.Reverse(known) // deepest first: report children before parents
	var recreated []string
	for _, p := range known {
		old := t.paths[p]
		wd, err := t.addWatch(p, t.roots[p])
		if err != nil && !gone(err) {
			return fmt.Errorf("watching %s again after an overflow: %w", p, err)
		}
		if err == nil && wd == old {
			continue
		}
		delete(t.paths, p)
		if t.wds[old] == p {
			delete(t.wds, old)
		}
		if err == nil {
			t.wds[wd] = p
			recreated = append(recreated, p)
		}
		if !emit(Event{Op: Removed, Dir: p}) {
			return errStopped
		}
	}
	slices.Reverse(recreated) // parents first
	for _, p := range recreated {
		if err := t.add(p, true, emit); err != nil {
			return err
		}
	}
	var scan func(dir string) error
	scan = func(dir string) error {
		return t.list(dir, func(sub string) error {
			if _, ok := t.paths[sub]; ok {
				return scan(sub)
			}
			return t.add(sub, true, emit)
		})
	}
	for root := range t.roots {
		if _, ok := t.paths[root]; ok {
			if err := scan(root); err != nil {
				return err
			}
		}
	}
	if len(t.wds) == 0 {
		return errors.New("every watched root was removed")
	}
	return nil
}
