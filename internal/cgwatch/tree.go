package cgwatch

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// errStopped ends event handling when the consumer side is gone.
var errStopped = errors.New("watcher stopped")

// errNoRoots ends the watcher when nothing is left to watch.
var errNoRoots = errors.New("every watched root was removed")

// Test hooks, run when set. testHookBeforeWatch runs before a directory's
// watch is added: a subdirectory made then gets no event and must be found
// by the listing. testHookBeforeList runs between the watch and the
// listing: a subdirectory made then is both listed and evented and must be
// reported once.
var testHookBeforeWatch, testHookBeforeList func(dir string)

// dirInfo is what the tree knows about one watched directory.
type dirInfo struct {
	// wd is the watch on the directory's inode. inotify gives an inode
	// one descriptor, so watching the path again tells whether it is still
	// the same directory, even on filesystems that reuse inode numbers.
	wd int32
	// kids are the known subdirectories (full paths), so a directory's
	// subtree is dropped without scanning every path.
	kids map[string]struct{}
}

// tree is the watcher's bookkeeping: which directory each watch descriptor
// names, and which directories have been reported (or were there at
// start). Only one goroutine uses it at a time.
//
// The tree follows the directory tree exactly: a directory leaves it, and
// its watch is removed, when its parent reports it deleted or moved away,
// or when a reconcile finds it gone. The kernel cannot be relied on for
// this: cgroupfs (v1 and v2) sends neither IN_DELETE_SELF nor IN_IGNORED
// when a cgroup is removed, and a watch pins the removed cgroup's inode,
// so a watch not removed here lives as long as the inotify descriptor.
type tree struct {
	roots map[string]bool
	// wds maps a watch the tree holds to its directory. An entry is gone
	// once the tree removed the watch or the kernel said IN_IGNORED; the
	// kernel's queue may still hold events for it, which are dropped.
	wds map[int32]string
	// paths holds the directories known to the consumer: reported as
	// Created (or present at start) and not yet reported as Removed. It
	// deduplicates a directory seen both by a listing and by a queued
	// IN_CREATE.
	paths map[string]*dirInfo

	addWatch func(dir string, root bool) (int32, error)
	rmWatch  func(wd int32)
}

func newTree(roots []string, add func(string, bool) (int32, error), rm func(int32)) tree {
	t := tree{roots: map[string]bool{}, wds: map[int32]string{}, paths: map[string]*dirInfo{}, addWatch: add, rmWatch: rm}
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

// watches is the number of inotify watches the tree holds.
func (t *tree) watches() int { return len(t.wds) }

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
	t.wds[wd] = dir
	t.paths[dir] = &dirInfo{wd: wd}
	if p, ok := t.paths[filepath.Dir(dir)]; ok && !t.roots[dir] {
		if p.kids == nil {
			p.kids = map[string]struct{}{}
		}
		p.kids[dir] = struct{}{}
	}
	if report && !emit(Event{Op: Created, Dir: dir}) {
		return errStopped
	}
	if testHookBeforeList != nil {
		testHookBeforeList(dir)
	}
	return t.list(dir, func(sub string) error { return t.add(sub, report, emit) })
}

// release removes dir's watch wd unless another known directory owns it
// (a directory renamed within the tree and listed under its new name
// before the old name's event was read shares its inode, so its watch) or
// the kernel dropped it already (IN_IGNORED came first).
func (t *tree) release(wd int32, dir string) {
	if t.wds[wd] != dir {
		return
	}
	delete(t.wds, wd)
	t.rmWatch(wd)
}

// drop forgets dir and every known directory below it, deepest first,
// removes their watches and reports each as Removed. A directory with
// known subdirectories can only leave the tree when events were lost or
// when it was renamed: rmdir removes only empty directories.
func (t *tree) drop(dir string, emit func(Event) bool) error {
	d, ok := t.paths[dir]
	if !ok {
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(d.kids)) {
		if err := t.drop(k, emit); err != nil {
			return err
		}
	}
	delete(t.paths, dir)
	if p, ok := t.paths[filepath.Dir(dir)]; ok {
		delete(p.kids, dir)
	}
	t.release(d.wd, dir)
	if !emit(Event{Op: Removed, Dir: dir}) {
		return errStopped
	}
	return nil
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
		// The kernel dropped the watch (its directory was removed, on
		// filesystems that say so). The path stays known: the kernel may
		// queue this before the parent's IN_DELETE, which is the event
		// that reports the removal.
		delete(t.wds, ev.wd)
		if len(t.wds) == 0 {
			return errNoRoots
		}
		return nil
	case ev.mask&unix.IN_DELETE_SELF != 0:
		// A subdirectory's removal is reported by its parent's IN_DELETE;
		// a root has no watched parent.
		if d, ok := t.paths[dir]; ok && t.roots[dir] && d.wd == ev.wd {
			if err := t.drop(dir, emit); err != nil {
				return err
			}
			if len(t.wds) == 0 {
				return errNoRoots
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
	case ev.mask&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0:
		// A directory never reported (created and removed before its
		// watch) is not reported now either. After a rename the old
		// watches would report events under names that no longer exist;
		// the new name, if inside the trees, arrives as IN_MOVED_TO and
		// is added afresh.
		return t.drop(path, emit)
	}
	return nil
}

// reconcile is the backstop for removals whose events never came (or were
// lost): each known directory that is gone is dropped, and one replaced by
// a new directory of the same path is dropped and added again. It returns
// the directories to add again, parents first.
//
// Identity is checked by watching the path again, not by comparing inode
// numbers: an unchanged directory gives back its descriptor, a new one
// gets another, and ext4 and others reuse the number of a removed inode
// at once. The cost is about a stat's.
func (t *tree) reconcile(emit func(Event) bool) ([]string, error) {
	known := make([]string, 0, len(t.paths))
	for p := range t.paths {
		known = append(known, p)
	}
	slices.Sort(known)
	slices.Reverse(known) // deepest first: report children before parents
	var again []string
	for _, p := range known {
		d, ok := t.paths[p]
		if !ok {
			continue // dropped with its parent's subtree
		}
		wd, serr := t.addWatch(p, t.roots[p])
		if serr != nil && !gone(serr) {
			return nil, fmt.Errorf("checking watched directory %s: %w", p, serr)
		}
		if serr == nil && wd == d.wd {
			continue
		}
		if err := t.drop(p, emit); err != nil {
			return nil, err
		}
		if serr == nil {
			again = append(again, p)
		}
	}
	slices.Reverse(again)
	return again, nil
}

// check runs reconcile and adds back the directories made again.
func (t *tree) check(emit func(Event) bool) error {
	again, err := t.reconcile(emit)
	if err != nil {
		return err
	}
	for _, p := range again {
		if err := t.add(p, true, emit); err != nil {
			return err
		}
	}
	if len(t.wds) == 0 {
		return errNoRoots
	}
	return nil
}

// resync brings the watches back in line with the filesystem after the
// kernel dropped events: a check, then every tree is listed again for
// directories that were never seen.
func (t *tree) resync(emit func(Event) bool) error {
	if err := t.check(emit); err != nil {
		return err
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
	return nil
}
