package cgwatch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Op is what happened to a directory.
type Op int

// The operations reported.
const (
	Created Op = iota + 1
	Removed
)

func (o Op) String() string {
	switch o {
	case Created:
		return "created"
	case Removed:
		return "removed"
	}
	return "Op(" + strconv.Itoa(int(o)) + ")"
}

// Event is one directory change. A directory renamed within the watched
// trees is reported as Removed under its old path and Created under its
// new one, with each directory below it.
type Event struct {
	Op  Op
	Dir string // absolute path under the root it was found in, as given to Watch (made absolute and cleaned)
}

const (
	// eventBuf absorbs bursts (a node starting many pods at once) so that
	// the kernel's queue, not ours, is the one that overflows (and says so).
	eventBuf = 1024
	// readBufSize holds many events; one needs at most 16 bytes plus
	// NAME_MAX+1.
	readBufSize = 64 << 10
	// reconcileEvery is how often every watched directory is checked
	// against the filesystem, the backstop for removals whose events never
	// came. A check is one inotify_add_watch per directory.
	reconcileEvery = time.Minute
)

// Watcher reports directories created and removed below its roots.
type Watcher struct {
	file   *os.File // the inotify descriptor, registered with the runtime poller
	raw    syscall.RawConn
	events chan Event
	cancel context.CancelFunc
	done   chan struct{} // closed when the read goroutine has returned

	overflows atomic.Uint64
	// watches mirrors the tree's count for other goroutines.
	watches atomic.Int64
	// every is the reconcile period.
	every time.Duration

	stopOnce sync.Once
	closeErr error // from closing file; written once in stop

	mu  sync.Mutex
	err error

	tree // owned by Watch until the read goroutine starts, then by it
}

// Watch starts watching every directory under roots (recursively) and
// returns once all existing directories are watched; they are not
// reported. Each root must be an existing directory. Cancelling ctx stops
// the watcher as Close does.
func Watch(ctx context.Context, roots ...string) (*Watcher, error) {
	return watchEvery(ctx, reconcileEvery, roots)
}

// watchEvery is Watch with the reconcile period.
func watchEvery(ctx context.Context, every time.Duration, roots []string) (*Watcher, error) {
	if len(roots) == 0 {
		return nil, errors.New("watching cgroup directories: no root given")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("watching cgroup directories: %w", err)
	}
	clean := make([]string, len(roots))
	for i, root := range roots {
		abs, err := filepath.Abs(root)
		if err != nil {
			return nil, fmt.Errorf("watching %s: %w", root, err)
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return nil, fmt.Errorf("watching %s: %w", root, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("watching %s: not a directory", root)
		}
		clean[i] = abs
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		if errors.Is(err, unix.EMFILE) {
			return nil, fmt.Errorf("creating an inotify instance: %w (fs.inotify.max_user_instances reached)", err)
		}
		return nil, fmt.Errorf("creating an inotify instance: %w", err)
	}
	// A non-blocking fd in an *os.File is served by the runtime poller:
	// reads park the goroutine, and Close wakes a blocked reader without
	// the fd-reuse race of closing a raw fd under it.
	f := os.NewFile(uintptr(fd), "inotify")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("inotify descriptor: %w", err)
	}
	w := &Watcher{file: f, raw: raw, events: make(chan Event, eventBuf), done: make(chan struct{}), every: every}
	w.tree = newTree(clean, w.addWatch, w.rmWatch)
	for _, root := range clean {
		// Existing directories are not reported: emit is never called.
		if err := w.add(root, false, nil); err != nil {
			f.Close()
			return nil, err
		}
		if _, ok := w.paths[root]; !ok {
			f.Close()
			return nil, fmt.Errorf("watching %s: removed while starting", root)
		}
	}
	w.watches.Store(int64(w.tree.watches()))
	ctx, w.cancel = context.WithCancel(ctx)
	context.AfterFunc(ctx, w.stop)
	go w.run(ctx)
	return w, nil
}

// Events returns the event channel. It is closed when the watcher stops:
// ctx done, Close, every root removed, or a failure (see Err).
func (w *Watcher) Events() <-chan Event { return w.events }

// Err says why the event channel closed: nil while running and after ctx
// cancellation or Close, the failure otherwise (every root removed, or a
// new directory that could not be watched, typically because
// fs.inotify.max_user_watches was reached).
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Overflows counts inotify queue overflows (IN_Q_OVERFLOW): the kernel
// dropped events because they were not read fast enough. The watcher
// recovers its own watches and reports what it finds changed, but events
// in between are lost: a caller that sees Overflows grow must rescan.
func (w *Watcher) Overflows() uint64 { return w.overflows.Load() }

// Watches is the number of inotify watches the watcher holds: one per
// directory in its trees as of the last events it read, 0 once stopped. Each counts
// against fs.inotify.max_user_watches, which the user's other daemons
// (kubelet, containerd, systemd for root) share.
func (w *Watcher) Watches() int { return int(w.watches.Load()) }

// Close stops the watcher and waits for its goroutine to return. It is
// safe to call more than once and concurrently with cancellation of the
// Watch context.
func (w *Watcher) Close() error {
	w.cancel()
	<-w.done
	return w.closeErr
}

// stop closes the inotify descriptor, which drops every watch and wakes a
// blocked read. It runs from the context's AfterFunc or from run on a
// failure; the Once makes the second caller wait for the first.
func (w *Watcher) stop() {
	w.stopOnce.Do(func() {
		if err := w.file.Close(); err != nil {
			w.closeErr = fmt.Errorf("closing the inotify descriptor: %w", err)
		}
	})
}

func (w *Watcher) run(ctx context.Context) {
	defer close(w.done)
	defer close(w.events)
	defer w.watches.Store(0) // the descriptor's close dropped them all
	defer w.stop()
	buf := make([]byte, readBufSize)
	var evs []rawEvent
	emit := func(ev Event) bool {
		select {
		case w.events <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	// The read deadline wakes the loop for the periodic reconcile; a busy
	// stream of events does not postpone it.
	next := time.Now().Add(w.every)
	deadlines := w.file.SetReadDeadline(next) == nil
	for {
		n, err := w.file.Read(buf)
		if ctx.Err() != nil {
			return // stopped on purpose: the error is the closed descriptor
		}
		if deadlines && !time.Now().Before(next) {
			if cerr := w.check(emit); cerr != nil {
				if ctx.Err() == nil {
					w.fail(cerr)
				}
				return
			}
			w.watches.Store(int64(w.tree.watches()))
			next = time.Now().Add(w.every)
			if derr := w.file.SetReadDeadline(next); derr != nil {
				w.fail(fmt.Errorf("arming the reconcile: %w", derr))
				return
			}
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			w.fail(fmt.Errorf("reading inotify events: %w", err))
			return
		}
		evs, err = parseEvents(evs[:0], buf[:n])
		if err != nil {
			w.fail(err)
			return
		}
		for _, ev := range evs {
			if err := w.apply(ev, emit, func() { w.overflows.Add(1) }); err != nil {
				if ctx.Err() == nil {
					w.fail(err)
				}
				return
			}
		}
		w.watches.Store(int64(w.tree.watches()))
	}
}

func (w *Watcher) fail(err error) {
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
}

// addWatch adds or refreshes the inotify watch on dir. Control keeps the
// descriptor open for the call, so a concurrent Close cannot hand the fd
// number to another file under us.
func (w *Watcher) addWatch(dir string, root bool) (int32, error) {
	mask := uint32(unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_ONLYDIR)
	if !root {
		// Roots may be symlinks (cpu -> cpu,cpuacct); a subdirectory
		// replaced by a symlink must not pull another tree in.
		mask |= unix.IN_DONT_FOLLOW
	}
	var (
		wd   int
		werr error
	)
	if err := w.raw.Control(func(fd uintptr) { wd, werr = unix.InotifyAddWatch(int(fd), dir, mask) }); err != nil {
		return -1, err
	}
	if errors.Is(werr, unix.ENOSPC) {
		return -1, fmt.Errorf("%w (fs.inotify.max_user_watches reached)", werr)
	}
	return int32(wd), werr
}

// rmWatch drops a watch; a watch already gone (EINVAL) is no error.
func (w *Watcher) rmWatch(wd int32) {
	_ = w.raw.Control(func(fd uintptr) { _, _ = unix.InotifyRmWatch(int(fd), uint32(wd)) })
}
