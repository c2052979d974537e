package agent

import (
	"context"
	"errors"
	"strconv"
	"time"

	"podwarden/internal/cgroup"
	"podwarden/internal/kmsg"
	"podwarden/internal/kubeevent"
	"podwarden/internal/oomreport"
)

// Where OOM kills are learnt from, best first.
const (
	// SourceAuto tries SourceKmsg, SourceSyslog, SourceMemoryEvents in
	// that order and uses the first that works.
	SourceAuto = "auto"
	// SourceKmsg reads /dev/kmsg: whole OOM reports, as they happen.
	SourceKmsg = "kmsg"
	// SourceSyslog reads the same reports through syslog(2), polled,
	// where a container's device cgroup refuses /dev/kmsg.
	SourceSyslog = "syslog"
	// SourceMemoryEvents counts oom_kill in each target's memory.events
	// (memory.oom_control on v1) on every fast pass: a kill is seen, but
	// not which process it took.
	SourceMemoryEvents = "memory.events"
)

// quietFlush is how long a report whose kill line has been seen waits for
// late group-kill and oom_reaper lines before it is handled.
const quietFlush = 2 * time.Second

// openKernelLog opens the best source the configuration allows and
// returns its name and, for the kernel log sources, its reader.
func (a *Agent) openKernelLog() (string, func(context.Context) (kmsg.Record, error), func()) {
	src := a.cfg.KernelLog
	if src == SourceAuto || src == SourceKmsg {
		// /dev/kmsg needs CAP_SYSLOG and, in a container, a device cgroup
		// rule that unprivileged pods do not get: failing to open it is
		// expected there.
		dev, err := kmsg.OpenDevice(a.cfg.KmsgPath, true, true)
		if err == nil {
			return SourceKmsg, dev.Next, func() { _ = dev.Close() }
		}
		a.log.Warn("kernel log device unavailable", "path", a.cfg.KmsgPath, "err", err)
	}
	if src == SourceAuto || src == SourceSyslog {
		s, err := kmsg.OpenSyslog(true)
		if err == nil {
			return SourceSyslog, s.Next, func() {}
		}
		a.log.Warn("kernel log unavailable through syslog(2)", "err", err)
	}
	return SourceMemoryEvents, nil, nil
}

// startKernelLog picks the OOM source, says which at start and in a
// metric, and follows the kernel log if that is the source.
func (a *Agent) startKernelLog(ctx context.Context, out chan<- oomreport.Report) {
	src, next, closeFn := a.openKernelLog()
	a.kernelLog = src
	for _, s := range []string{SourceKmsg, SourceSyslog, SourceMemoryEvents} {
		v := 0.0
		if s == src {
			v = 1
		}
		a.m.KernelLogSource.WithLabelValues(s).Set(v)
	}
	if next == nil {
		a.log.Warn("OOM kills are seen through memory.events counters only: Events will not name the killed process", "source", src)
		return
	}
	a.log.Info("reading OOM reports from the kernel log", "source", src)
	go func() {
		defer closeFn()
		if err := followKernelLog(ctx, next, out); err != nil {
			a.log.Warn("kernel log reader stopped", "source", src, "err", err)
		}
	}()
}

// followKernelLog reads the kernel log and sends each complete OOM report
// on out until ctx ends; it returns why it stopped.
func followKernelLog(ctx context.Context, next func(context.Context) (kmsg.Record, error), out chan<- oomreport.Report) error {
	err := oomreport.Follow(ctx, next, quietFlush, func(rs []oomreport.Report) error {
		for _, r := range rs {
			select {
			case out <- r:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// onReport turns one kernel OOM report into metrics, log lines and, with a
// reporter, Kubernetes Events on the pods and the node it hit. Only kills
// in targets count as pod OOMs, and kills of host processes in a node OOM
// as kind host; a kill anywhere else on the node (a pod the policy does
// not select, a non-pod container, a host service at its own limit) is
// logged at debug level and not counted. Events are handed to the outbox:
// nothing here waits for the API server.
func (a *Agent) onReport(r oomreport.Report) {
	group := 0
	for _, v := range r.Victims {
		if v.GroupMember {
			group++
		}
	}
	kind := r.Kind.String()
	if kind != OOMKindCgroup && kind != OOMKindNode {
		kind = OOMKindUnknown
	}
	var hostVictims []string
	for _, v := range r.Victims {
		t := a.victimTarget(v)
		if t == nil {
			if kind == OOMKindNode && v.PodUID == "" && !cgroup.InContainer(v.Cgroup) {
				hostVictims = append(hostVictims, v.Comm+" (pid "+strconv.Itoa(v.PID)+")")
				a.m.OOMKills.WithLabelValues("", "", "", OOMKindHost).Inc()
				a.log.Warn("oom kill of a host process", "kind", OOMKindHost, "comm", v.Comm, "pid", v.PID, "adj", v.OOMScoreAdj,
					"anon_rss_kb", v.AnonRSSKB, "diagnosis", r.Diagnosis.Summary)
				continue
			}
			a.log.Debug("oom kill outside the targets", "kind", kind, "cgroup", v.Cgroup, "pod_uid", v.PodUID,
				"comm", v.Comm, "pid", v.PID)
			continue
		}
		l := t.Labels()
		a.m.OOMKills.WithLabelValues(l[0], l[1], l[2], kind).Inc()
		a.log.Warn("oom kill in pod", "kind", kind, "pod", t.PodRef(), "container", t.ContainerLabel(), "comm", v.Comm, "pid", v.PID,
			"adj", v.OOMScoreAdj, "anon_rss_kb", v.AnonRSSKB, "group_member", v.GroupMember, "diagnosis", r.Diagnosis.Summary)
		if a.cfg.Reporter == nil || v.GroupMember || t.PodName == "" {
			continue // one Event per OOM, and only for pods the runtime named
		}
		a.post(kubeevent.OOM{
			PodUID: t.PodUID, Namespace: t.Namespace, PodName: t.PodName, Container: t.Container,
			Comm: v.Comm, PID: v.PID, Kind: r.Kind, AnonRSSBytes: uint64(max(v.AnonRSSKB, 0)) * 1024,
			GroupKill: group > 0, Bystanders: group,
		}, false)
	}
	if kind == OOMKindNode && len(hostVictims) > 0 {
		a.post(kubeevent.OOM{Kind: r.Kind, HostVictims: hostVictims}, true)
	}
}

// victimTarget is the target an OOM victim was in: by its cgroup path
// (the kernel prints the host path the targets are keyed by), else by the
// pod and container the report attributed it to.
func (a *Agent) victimTarget(v oomreport.Victim) *Target {
	if v.Cgroup != "" {
		if t := a.targetOf(v.Cgroup); t != nil {
			return t
		}
	}
	if v.PodUID == "" {
		return nil
	}
	return a.targetByContainer(v.PodUID, v.ContainerID)
}

// watchOOM turns a rise of target t's oom_kill counter into a log line, a
// metric and, with a reporter, an Event that says a process was killed
// without naming it: without the kernel log the counter is the only OOM
// signal.
func (a *Agent) watchOOM(t *Target) {
	ev, err := a.cg.Events(t.Cgroup)
	if err != nil {
		return
	}
	prev, seen := t.st.oomKills, t.st.oomRead
	t.st.oomKills, t.st.oomRead = ev.OOMKill, true
	if !seen || ev.OOMKill <= prev {
		return
	}
	n := ev.OOMKill - prev
	l := t.Labels()
	a.m.OOMKills.WithLabelValues(l[0], l[1], l[2], OOMKindUnknown).Add(float64(n))
	a.log.Warn("oom kill in target container", "pod", t.PodRef(), "container", t.ContainerLabel(),
		"cgroup", t.Cgroup, "kills", n, "group_kills", ev.OOMGroupKill, "source", SourceMemoryEvents)
	if t.PodName != "" {
		a.post(kubeevent.OOM{PodUID: t.PodUID, Namespace: t.Namespace, PodName: t.PodName,
			Container: t.Container, Kills: int(n)}, false)
	}
}

func (a *Agent) targetByContainer(podUID, containerID string) *Target {
	for _, t := range a.targets {
		if t.PodUID == podUID && (containerID == "" || t.ContainerID == containerID) {
			return t
		}
	}
	return nil
}
