package cgwatch

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Op is what happened to a directory.
type Op int

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
	return "unknown"
}

// Event is one directory change.
type Event struct {
	Op  Op
	Dir string // absolute filesystem path
}

// Watcher reports directory changes below its roots.
type Watcher struct {
	fd        int
	wds       map[int32]string // watch descriptor -> directory; owned by the loop goroutine
	events    chan Event
	overflows atomic.Uint64
	err       error
	done      chan struct{}
	cancel    context.CancelFunc
}

const mask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_DELETE_SELF | unix.IN_ONLYDIR

// pollTimeout bounds how long the loop blocks, so cancellation is noticed.
const pollTimeout = 200 // ms

// Watch starts watching roots and every directory below them. Existing
// directories are not reported.
func Watch(ctx context.Context, roots ...string) (*Watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify init: %w", err)
	}
	w := &Watcher{fd: fd, wds: map[int32]string{}, events: make(chan Event, 1024), done: make(chan struct{})}
	for _, root := range roots {
		if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
			unix.Close(fd)
			if err == nil {
				err = errors.New("not a directory")
			}
			return nil, fmt.Errorf("watch %s: %w", root, err)
		}
		if err := w.addTree(root, false); err != nil {
			unix.Close(fd)
			return nil, err
		}
	}
	ctx, w.cancel = context.WithCancel(ctx)
	go w.loop(ctx)
	return w, nil
}

// Events returns the event channel; it is closed when the watcher stops.
func (w *Watcher) Events() <-chan Event { return w.events }

// Err says why the watcher stopped; nil after cancellation or Close.
func (w *Watcher) Err() error {
	<-w.done
	return w.err
}

// Overflows counts inotify queue overflows: events were lost and the
// caller must rescan.
func (w *Watcher) Overflows() uint64 { return w.overflows.Load() }

// Close stops the watcher and waits for its goroutine.
func (w *Watcher) Close() error {
	w.cancel()
	<-w.done
	return nil
}

// addTree watches dir and every directory below it. With report set, the
// directories below dir are reported as created: they appeared before the
// watch on dir existed.
func (w *Watcher) addTree(dir string, report bool) error {
	wd, err := unix.InotifyAddWatch(w.fd, dir, mask)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil // removed already
	}
	if err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	w.wds[int32(wd)] = dir
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil // removed while we looked
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		sub := filepath.Join(dir, e.Name())
		if report {
			w.send(Event{Op: Created, Dir: sub})
		}
		if err := w.addTree(sub, report); err != nil {
			return err
		}
	}
	return nil
}

func (w *Watcher) send(ev Event) {
	// The loop goroutine is the only sender; a full channel blocks it,
	// which is right: events are not dropped by us.
	w.events <- ev
}

func (w *Watcher) loop(ctx context.Context) {
	defer close(w.done)
	defer close(w.events)
	defer unix.Close(w.fd)
	buf := make([]byte, 64<<10)
	fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
	for ctx.Err() == nil {
		n, err := unix.Poll(fds, pollTimeout)
		if errors.Is(err, unix.EINTR) || n == 0 {
			continue
		}
		if err != nil {
			w.err = fmt.Errorf("poll inotify: %w", err)
			return
		}
		n, err = unix.Read(w.fd, buf)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			w.err = fmt.Errorf("read inotify: %w", err)
			return
		}
		if err := w.handle(buf[:n]); err != nil {
			w.err = err
			return
		}
	}
}

func (w *Watcher) handle(b []byte) error {
	const hdr = int(unsafe.Sizeof(unix.InotifyEvent{}))
	ne := binary.NativeEndian
	for len(b) >= hdr {
		wd := int32(ne.Uint32(b[0:]))
		m := ne.Uint32(b[4:])
		nameLen := int(ne.Uint32(b[12:]))
		if hdr+nameLen > len(b) {
			return fmt.Errorf("inotify event of %d bytes in a %d-byte read", hdr+nameLen, len(b))
		}
		name := string(trimNUL(b[hdr : hdr+nameLen]))
		b = b[hdr+nameLen:]
		if m&unix.IN_Q_OVERFLOW != 0 {
			w.overflows.Add(1)
			continue
		}
		dir, ok := w.wds[wd]
		if m&unix.IN_IGNORED != 0 {
			delete(w.wds, wd)
			continue
		}
		if !ok || m&unix.IN_ISDIR == 0 || name == "" {
			continue
		}
		path := filepath.Join(dir, name)
		switch {
		case m&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0:
			w.send(Event{Op: Created, Dir: path})
			if err := w.addTree(path, true); err != nil {
				return err
			}
		case m&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0:
			w.send(Event{Op: Removed, Dir: path})
		}
	}
	return nil
}

func trimNUL(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}
