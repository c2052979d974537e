package agent

import (
	"context"
	"strings"
	"time"

	"podwarden/internal/cgroup"
	"podwarden/internal/cgwatch"
	"podwarden/internal/cri"
	"podwarden/internal/oomreport"
	"podwarden/internal/procevent"
	"podwarden/internal/procfs"
)

// Bounds of the cgroups waiting for the runtime to name them: a cgroup the
// runtime has not listed within pendingTTL is left to the next full pass,
// and at most maxPending wait at a time.
const (
	pendingTTL = time.Minute
	maxPending = 4096
)

// Run keeps the policy true until ctx ends. It reacts to new processes
// (netlink process connector), new cgroups (inotify) and runtime container
// events, checks targets cheaply every FastInterval and fully every
// Policy.Interval. An event source that cannot start or dies is logged and
// replaced by the periodic passes; only ctx ends Run.
//
// The loop is the protection path and never waits on the network, the
// runtime or the API server: runtime lists (runtime.go) and Events
// (the Events outbox, kubeevent) run beside it and hand it their results.
func (a *Agent) Run(ctx context.Context) error {
	a.protectSelf()
	// Subscribe before the first pass, so nothing created during it is
	// missed until the next periodic one.
	src := a.openSources(ctx)
	defer src.close()
	a.procEventsOn = src.procEvents != nil
	a.dirEventsOn = src.dirEvents != nil
	procEvents, dirEvents := src.procEvents, src.dirEvents
	cgRoot := strings.TrimSuffix(a.cg.Dir("/"), "/")

	var answers <-chan map[string]*podInfo
	streams := make(chan (<-chan cri.Event), 1)
	if a.rt != nil {
		a.lister = a.startLister(ctx)
		answers = a.lister.out
		// Opening the stream is a call to the runtime too: off the loop.
		go func() {
			ch, err := a.rt.Events(ctx)
			if err != nil {
				a.log.Warn("runtime events unavailable: relying on periodic re-list", "err", err)
				return
			}
			streams <- ch
		}()
	}
	reports := make(chan oomreport.Report, 16)
	a.startKernelLog(ctx, reports)

	a.reconcile(ctx)
	full := time.NewTicker(a.cfg.Policy.Interval)
	defer full.Stop()
	fast := time.NewTicker(a.cfg.FastInterval)
	defer fast.Stop()
	defer func() {
		if a.sched.timer != nil {
			a.sched.timer.Stop()
		}
	}()
	a.log.Info("agent running", "targets", len(a.targets), "interval", a.cfg.Policy.Interval, "fast_interval", a.cfg.FastInterval,
		"proc_events", procEvents != nil, "cgroup_events", dirEvents != nil, "oom_source", a.kernelLog,
		"own_namespace", a.cfg.OwnNamespace, "own_pod", a.selfPod)

	var rtEvents <-chan cri.Event
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-procEvents:
			if !ok {
				a.log.Warn("process connector closed: scanning cgroup.procs instead", "err", src.procErr())
				procEvents = nil
				a.procEventsOn = false
				continue
			}
			a.onProcess(ev)
		case ev, ok := <-dirEvents:
			if !ok {
				a.log.Warn("cgroup watch closed", "err", src.dirErr())
				dirEvents = nil
				a.dirEventsOn = false
				continue
			}
			cg := strings.TrimPrefix(ev.Dir, cgRoot)
			if cg == "" {
				cg = "/"
			}
			a.onDir(ctx, cg, ev.Op)
		case ch := <-streams:
			rtEvents = ch
		case ev, ok := <-rtEvents:
			if !ok {
				a.log.Info("runtime event stream ended: relying on periodic re-list")
				rtEvents = nil
				continue
			}
			if ev.Type == cri.EventCreated || ev.Type == cri.EventStarted {
				a.lister.request()
			}
		case pods := <-answers:
			a.onPods(ctx, pods)
		case r := <-reports:
			a.onReport(r)
		case now := <-a.timerC():
			a.runDue(ctx, now)
		case <-fast.C:
			a.m.CgroupWatches.Set(float64(src.watches()))
			if src.lostSomething(a.m) {
				a.forceFull = true
				a.reconcile(ctx)
				continue
			}
			a.fastPass(ctx, procEvents == nil)
		case <-full.C:
			if a.lister != nil {
				a.lister.request()
			}
			a.reconcile(ctx)
		}
	}
}

// onProcess protects a process the moment it forks or execs. An exec is the
// event that matters: runc and kubectl exec set the container's adj on
// their init process just before exec, and the cgroup move is done by then.
func (a *Agent) onProcess(ev procevent.Event) {
	switch {
	case ev.Kind == procevent.Exit:
		if ev.PID == ev.TGID {
			a.forgetProc(ev.TGID)
		}
		return
	case ev.Kind == procevent.Fork && ev.PID != ev.TGID:
		return // a new thread, not a process
	case ev.Kind != procevent.Fork && ev.Kind != procevent.Exec:
		return
	}
	pid := ev.TGID
	if pid == a.self {
		return
	}
	p, err := a.proc.Read(pid, procfs.FieldStat|procfs.FieldOOMScoreAdj|procfs.FieldCgroup)
	if err != nil {
		return // exited already
	}
	cg := a.memCgroup(p)
	var changes []Change
	t := a.targetOf(cg)
	if t == nil {
		if ev.Kind == procevent.Exec {
			a.planHostProc(p, &changes)
		}
	} else {
		was := t.st.procs[pid]
		s := procState{start: p.StartTime, fixed: was.fixed && was.start == p.StartTime}
		if c, ok := podAdjChange(t, p, cg); ok {
			c.Drift = s.fixed
			changes = append(changes, c)
		}
		a.knowProc(t, pid, s)
	}
	if len(changes) == 0 {
		return
	}
	a.apply(changes)
	a.m.ProtectLatency.Observe(time.Since(ev.Time).Seconds())
}

// onDir handles a new or removed cgroup directory.
func (a *Agent) onDir(ctx context.Context, cg string, op cgwatch.Op) {
	if op == cgwatch.Removed {
		a.dropTarget(cg)
		delete(a.pending, cg)
		return
	}
	now := time.Now()
	if t := a.targetOf(cg); t != nil && a.rt == nil && podBelow(t.Cgroup, cgroup.ParsePath(cg)) {
		// A pod inside a glob's target: the target is a parent of pods
		// (discover's rule), so rediscover now rather than let it
		// swallow the pod's containers until the next full pass.
		a.dropTarget(t.Cgroup)
		a.forceFull = true
		a.reconcile(ctx)
		return
	}
	if t := a.targetOf(cg); t != nil {
		// A cgroup inside a target (systemd in the container making a
		// scope): clear its flag now and recheck the whole target soon,
		// once however many cgroups it makes.
		var changes []Change
		if err := a.planFlag(t, cg, &changes); err != nil {
			a.countError("plan", err)
		}
		a.apply(changes)
		a.startRechecks(t, now)
		return
	}
	if a.rt == nil {
		if t := a.match(cg); t != nil {
			a.addTarget(t)
			a.protect(ctx, t, "cgroup")
			a.startRechecks(t, now)
		}
		return
	}
	if _, ok := containerID(cg, cgroup.ParsePath(cg)); !ok {
		return // not a container cgroup: nothing the runtime could name
	}
	if t := a.match(cg); t != nil {
		a.addTarget(t)
		a.protect(ctx, t, "cgroup")
		a.startRechecks(t, now)
		return
	}
	// The runtime's last answer does not know this container: ask again,
	// and protect it when the answer names it.
	if len(a.pending) < maxPending {
		a.pending[cg] = now
	}
	a.lister.request()
}

// onPods takes a new answer from the runtime.
func (a *Agent) onPods(ctx context.Context, pods map[string]*podInfo) {
	first := a.pods == nil
	a.pods = pods
	if first {
		a.forceFull = true
		a.reconcile(ctx)
		return
	}
	now := time.Now()
	for _, cg := range sortedKeys(a.pending) {
		t := a.match(cg)
		if t == nil {
			continue
		}
		if _, ok := a.targets[cg]; !ok {
			a.addTarget(t)
			a.protect(ctx, t, "runtime")
			a.startRechecks(t, now)
		}
		delete(a.pending, cg)
	}
}

// protect makes one target right: its flags and every process.
func (a *Agent) protect(ctx context.Context, t *Target, trigger string) {
	start := time.Now()
	a.health.enter("protect " + t.Cgroup)
	defer a.health.enter("idle")
	var changes []Change
	_, errs := a.planTarget(ctx, t, &changes)
	for _, err := range errs {
		a.countError("plan", err)
		a.log.Warn("plan", "cgroup", t.Cgroup, "err", err)
	}
	a.apply(changes)
	t.st.last = time.Now()
	d := t.st.last.Sub(start).Seconds()
	a.m.Reconcile.WithLabelValues(trigger).Observe(d)
	if len(changes) > 0 && trigger != "recheck" {
		a.m.ProtectLatency.Observe(d)
	}
}

// fastPass is the cheap periodic check: flags of every target subtree, OOM
// counters, and, when the process connector is down, new pids.
func (a *Agent) fastPass(ctx context.Context, scanProcs bool) {
	start := time.Now()
	a.health.enter("fast pass")
	var changes []Change
	for _, cg := range sortedKeys(a.targets) {
		t := a.targets[cg]
		if err := a.planGroup(ctx, t, &changes); err != nil {
			a.countError("plan", err)
		}
		if scanProcs {
			pids, err := a.cg.Procs(t.Cgroup, true)
			if err != nil {
				continue
			}
			for _, pid := range pids {
				if _, ok := t.st.procs[pid]; !ok {
					if s, ok := a.planPidAdj(t, pid, procState{}, &changes); ok {
						a.knowProc(t, pid, s)
					}
				}
			}
		}
		if a.kernelLog == SourceMemoryEvents {
			a.watchOOM(t)
		}
	}
	a.apply(changes)
	for cg, at := range a.pending {
		if start.Sub(at) > pendingTTL {
			delete(a.pending, cg)
		}
	}
	a.m.Reconcile.WithLabelValues("fast").Observe(time.Since(start).Seconds())
	a.health.passDone(false)
}
