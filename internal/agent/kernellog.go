package agent

import (
	"context"
	"errors"
	"time"

	"podwarden/internal/kmsg"
	"podwarden/internal/kubeevent"
	"podwarden/internal/oomreport"
)

// Reporter posts OOM kills to Kubernetes (kubeevent.Reporter); nil disables it.
type Reporter interface {
	PodOOM(ctx context.Context, o kubeevent.OOM) error
	NodeOOM(ctx context.Context, o kubeevent.OOM) error
}

// quietFlush is how long a report whose kill line has been seen waits for
// late group-kill and oom_reaper lines before it is handled.
const quietFlush = 2 * time.Second

// watchKernelLog reads the kernel log device from its end and sends each
// complete OOM report on out until ctx ends; it returns why it stopped.
func watchKernelLog(ctx context.Context, dev *kmsg.Device, out chan<- oomreport.Report) error {
	defer dev.Close()
	err := oomreport.Follow(ctx, dev.Next, quietFlush, func(rs []oomreport.Report) error {
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
// reporter, Kubernetes Events on the pods and the node it hit.
func (a *Agent) onReport(ctx context.Context, r oomreport.Report) {
	group := 0
	for _, v := range r.Victims {
		if v.GroupMember {
			group++
		}
	}
	var hostVictims []string
	for _, v := range r.Victims {
		if v.PodUID == "" {
			hostVictims = append(hostVictims, v.Comm+" (pid "+itoa(v.PID)+")")
			a.m.OOMKills.WithLabelValues("", "", r.Kind+"_host").Inc()
			a.log.Warn("oom kill of a host process", "kind", r.Kind, "comm", v.Comm, "pid", v.PID, "adj", v.OOMScoreAdj,
				"anon_rss_kb", v.AnonRSSKB, "diagnosis", r.Diagnosis.Summary)
			continue
		}
		t := a.targetByContainer(v.PodUID, v.ContainerID)
		pod, container := v.PodUID, shortContainer(v.ContainerID)
		if t != nil {
			pod, container = t.podName(), t.containerName()
		}
		a.m.OOMKills.WithLabelValues(pod, container, r.Kind).Inc()
		a.log.Warn("oom kill in pod", "kind", r.Kind, "pod", pod, "container", container, "comm", v.Comm, "pid", v.PID,
			"adj", v.OOMScoreAdj, "anon_rss_kb", v.AnonRSSKB, "group_member", v.GroupMember, "diagnosis", r.Diagnosis.Summary)
		if a.cfg.Reporter == nil || v.GroupMember || t == nil || t.PodName == "" {
			continue // one Event per OOM, and only for pods the runtime named
		}
		err := a.cfg.Reporter.PodOOM(ctx, kubeevent.OOM{
			PodUID: t.PodUID, Namespace: t.Namespace, PodName: t.PodName, Container: t.Container,
			Comm: v.Comm, PID: v.PID, Kind: r.Kind, AnonRSSBytes: uint64(max(v.AnonRSSKB, 0)) * 1024,
			GroupKill: group > 0, Bystanders: group,
		})
		if err != nil {
			a.countError("event", err)
			a.log.Warn("post pod event", "pod", pod, "err", err)
		}
	}
	if a.cfg.Reporter != nil && r.Kind == "node" && len(hostVictims) > 0 {
		if err := a.cfg.Reporter.NodeOOM(ctx, kubeevent.OOM{Kind: r.Kind, HostVictims: hostVictims}); err != nil {
			a.countError("event", err)
			a.log.Warn("post node event", "err", err)
		}
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

func shortContainer(id string) string {
	if len(id) > 13 {
		return id[:13]
	}
	return id
}
