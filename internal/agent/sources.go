package agent

import (
	"context"

	"podwarden/internal/cgwatch"
	"podwarden/internal/procevent"
)

// sources are the kernel event streams the loop reacts to. Either may be
// missing (no CAP_NET_ADMIN, not in the host network namespace, inotify
// limits): the loop then relies on its periodic passes.
type sources struct {
	proc       *procevent.Listener
	procEvents <-chan procevent.Event
	lostProc   uint64

	dir       *cgwatch.Watcher
	dirEvents <-chan cgwatch.Event
	overflows uint64
}

func (a *Agent) openSources(ctx context.Context) *sources {
	s := &sources{}
	if pl, err := procevent.Listen(ctx); err != nil {
		a.log.Warn("process connector unavailable: new processes are found by scanning cgroup.procs", "every", a.cfg.FastInterval, "err", err)
	} else {
		s.proc, s.procEvents = pl, pl.Events()
	}
	if w, err := cgwatch.Watch(ctx, a.cg.Dir("/")); err != nil {
		a.log.Warn("cgroup watch unavailable: new containers are found by the periodic passes", "err", err)
	} else {
		s.dir, s.dirEvents = w, w.Events()
	}
	return s
}

func (s *sources) procErr() error {
	if s.proc == nil {
		return nil
	}
	return s.proc.Err()
}

func (s *sources) dirErr() error {
	if s.dir == nil {
		return nil
	}
	return s.dir.Err()
}

// lostSomething reports whether either stream dropped events since the
// last call; the caller must then rescan everything.
func (s *sources) lostSomething(m *Metrics) bool {
	lost := false
	if s.proc != nil && s.proc.Lost() != s.lostProc {
		s.lostProc = s.proc.Lost()
		m.EventsLost.WithLabelValues("proc_connector").Inc()
		lost = true
	}
	if s.dir != nil && s.dir.Overflows() != s.overflows {
		s.overflows = s.dir.Overflows()
		m.EventsLost.WithLabelValues("inotify").Inc()
		lost = true
	}
	return lost
}

// watches is the number of inotify watches the cgroup watcher holds, 0
// without one.
func (s *sources) watches() int {
	if s.dir == nil {
		return 0
	}
	return s.dir.Watches()
}

func (s *sources) close() {
	if s.proc != nil {
		s.proc.Close()
	}
	if s.dir != nil {
		s.dir.Close()
	}
}
