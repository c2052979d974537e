package agent

import (
	"context"
	"strings"
	"time"

	"podwarden/internal/cgwatch"
	"podwarden/internal/cri"
	"podwarden/internal/kmsg"
	"podwarden/internal/oomreport"
	"podwarden/internal/procevent"
	"podwarden/internal/procfs"
)

// recheckAfter are the delays at which a new target is checked again: runc
// writes memory.oom.group=1 after it creates the cgroup, so the first write
// can be undone moments later.
var recheckAfter = []time.Duration{20 * time.Millisecond, 200 * time.Millisecond, time.Second}

// Run keeps the policy true until ctx ends. It reacts to new processes
// (netlink process connector), new cgroups (inotify) and runtime container
// events, checks targets cheaply every FastInterval and fully every
// Policy.Interval. An event source that cannot start or dies is logged and
// replaced by the periodic passes; only ctx ends Run.
func (a *Agent) Run(ctx context.Context) error {
	a.protectSelf()
	// Subscribe before the first pass, so nothing created during it is
	// missed until the next periodic one.
	src := a.openSources(ctx)
	defer src.close()
	a.procEventsOn = src.procEvents != nil
	a.dirEventsOn = src.dirEvents != nil
	if _, err := a.Reconcile(ctx); err != nil {
		a.log.Error("initial reconcile", "err", err)
	}
	procEvents, dirEvents := src.procEvents, src.dirEvents
	cgRoot := strings.TrimSuffix(a.cg.Dir("/"), "/")

	var rtEvents <-chan cri.Event
	if a.rt != nil {
		var err error
		if rtEvents, err = a.rt.Events(ctx); err != nil {
			a.log.Warn("runtime events unavailable: relying on periodic re-list", "err", err)
		}
	}

	reports := make(chan oomreport.Report, 16)
	if a.cfg.KmsgPath != "" {
		// /dev/kmsg needs CAP_SYSLOG and, in a container, a device cgroup
		// rule that unprivileged pods do not get: failing to open it is
		// expected there, and memory.events counters remain.
		dev, err := kmsg.OpenDevice(a.cfg.KmsgPath, true, true)
		if err != nil {
			a.log.Warn("kernel log unavailable: OOM kills are seen through memory.events counters only", "path", a.cfg.KmsgPath, "err", err)
		} else {
			a.kmsgSeen = true
			go func() {
				if err := watchKernelLog(ctx, dev, reports); err != nil {
					a.log.Warn("kernel log reader stopped", "err", err)
				}
			}()
		}
	}

	recheck := make(chan string, 64)
	full := time.NewTicker(a.cfg.Policy.Interval)
	defer full.Stop()
	fast := time.NewTicker(a.cfg.FastInterval)
	defer fast.Stop()
	a.log.Info("agent running", "targets", len(a.targets), "interval", a.cfg.Policy.Interval,
		"proc_events", procEvents != nil, "cgroup_events", dirEvents != nil, "runtime_events", rtEvents != nil)

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
			a.onDir(ctx, strings.TrimPrefix(ev.Dir, cgRoot), ev.Op, recheck)
		case ev, ok := <-rtEvents:
			if !ok {
				a.log.Info("runtime event stream ended: relying on periodic re-list")
				rtEvents = nil
				continue
			}
			if ev.Type == cri.EventCreated || ev.Type == cri.EventStarted {
				a.discoverNew(ctx, "runtime", recheck)
			}
		case r := <-reports:
			a.onReport(ctx, r)
		case cg := <-recheck:
			if t := a.targets[cg]; t != nil {
				a.protect(ctx, t, "recheck")
			}
		case <-fast.C:
			if src.lostSomething(a.m) {
				a.forceFull = true
				a.Reconcile(ctx)
				continue
			}
			a.fastPass(ctx, procEvents == nil)
		case <-full.C:
			a.Reconcile(ctx)
		}
	}
}

// onProcess protects a process the moment it forks or execs. An exec is the
// event that matters: runc and kubectl exec set the container's adj on
// their init process just before exec, and the cgroup move is done by then.
func (a *Agent) onProcess(ev procevent.Event) {
	switch {
	case ev.Kind == procevent.Exit:
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
		if c, ok := podAdjChange(t, p, cg); ok {
			changes = append(changes, c)
		}
		if a.known[t.Cgroup] != nil {
			a.known[t.Cgroup][pid] = true
		}
	}
	if len(changes) == 0 {
		return
	}
	a.apply(changes)
	a.m.ProtectLatency.Observe(time.Since(ev.Time).Seconds())
}

// onDir handles a new or removed cgroup directory.
func (a *Agent) onDir(ctx context.Context, cg string, op cgwatch.Op, recheck chan<- string) {
	if cg == "" {
		cg = "/"
	}
	if op == cgwatch.Removed {
		if _, ok := a.targets[cg]; ok {
			delete(a.targets, cg)
			delete(a.known, cg)
			a.m.ProtectedContainers.Set(float64(len(a.targets)))
		}
		return
	}
	if t := a.targetOf(cg); t != nil {
		// A cgroup inside a target (systemd in the container making a
		// scope): clear its flag and recheck the whole target soon.
		a.protect(ctx, t, "cgroup")
		scheduleRecheck(ctx, t.Cgroup, recheck)
		return
	}
	if a.rt == nil {
		if t := a.match(cg, nil); t != nil {
			a.targets[cg] = t
			a.m.ProtectedContainers.Set(float64(len(a.targets)))
			a.protect(ctx, t, "cgroup")
			scheduleRecheck(ctx, cg, recheck)
		}
		return
	}
	a.discoverNew(ctx, "cgroup", recheck)
}

// discoverNew re-lists targets and protects the ones not seen before.
func (a *Agent) discoverNew(ctx context.Context, trigger string, recheck chan<- string) {
	targets, err := a.discover(ctx)
	if err != nil {
		a.countError("discover", err)
		a.log.Warn("discover", "trigger", trigger, "err", err)
		return
	}
	for cg, t := range targets {
		if _, ok := a.targets[cg]; ok {
			continue
		}
		a.targets[cg] = t
		a.protect(ctx, t, trigger)
		scheduleRecheck(ctx, cg, recheck)
	}
	a.m.ProtectedContainers.Set(float64(len(a.targets)))
}

// protect makes one target right: its flags and every process.
func (a *Agent) protect(ctx context.Context, t *Target, trigger string) {
	start := time.Now()
	var changes []Change
	_, errs := a.planTarget(ctx, t, &changes)
	for _, err := range errs {
		a.countError("plan", err)
		a.log.Warn("plan", "cgroup", t.Cgroup, "err", err)
	}
	a.apply(changes)
	d := time.Since(start).Seconds()
	a.m.Reconcile.WithLabelValues(trigger).Observe(d)
	if len(changes) > 0 && trigger != "recheck" {
		a.m.ProtectLatency.Observe(d)
	}
}

func scheduleRecheck(ctx context.Context, cg string, recheck chan<- string) {
	go func() {
		for _, d := range recheckAfter {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
			select {
			case recheck <- cg:
			case <-ctx.Done():
				return
			}
		}
	}()
}

// fastPass is the cheap periodic check: flags of every target subtree, OOM
// counters, and, when the process connector is down, new pids.
func (a *Agent) fastPass(ctx context.Context, scanProcs bool) {
	start := time.Now()
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
			known := a.known[cg]
			if known == nil {
				known = map[int]bool{}
				a.known[cg] = known
			}
			for _, pid := range pids {
				if !known[pid] {
					a.planPidAdj(t, pid, &changes)
					known[pid] = true
				}
			}
		}
		if !a.kmsgSeen {
			// The kernel log reports every kill; without it, this
			// counter is the only OOM signal.
			a.watchOOM(t)
		}
	}
	a.apply(changes)
	a.m.Reconcile.WithLabelValues("fast").Observe(time.Since(start).Seconds())
}

// watchOOM turns a rise of the target's oom_kill counter into a log line
// and a metric.
func (a *Agent) watchOOM(t *Target) {
	ev, err := a.cg.Events(t.Cgroup)
	if err != nil {
		return
	}
	prev, seen := a.oomSeen[t.Cgroup]
	a.oomSeen[t.Cgroup] = ev.OOMKill
	if !seen || ev.OOMKill <= prev {
		return
	}
	n := ev.OOMKill - prev
	if !a.kmsgSeen {
		// Without the kernel log this counter is the only OOM signal.
		a.m.OOMKills.WithLabelValues(t.podName(), t.containerName(), "memory.events").Add(float64(n))
	}
	a.log.Warn("oom kill in target container", "pod", t.podName(), "container", t.containerName(),
		"cgroup", t.Cgroup, "kills", n, "group_kills", ev.OOMGroupKill)
}
