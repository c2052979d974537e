package nri

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"

	"podwarden/internal/policy"
)

// Config is what a Plugin needs. The zero CgroupV2 is the safe choice: the
// plugin then sets only oom_score_adj.
type Config struct {
	// Policy decides which pods are targets and what they get. It must
	// pass policy.Config.Validate.
	Policy policy.Config
	// CgroupV2 allows setting memory.oom.group. Set it only when the host
	// runs the unified cgroup v2 hierarchy: on v1 and hybrid hosts runc
	// refuses unified resources and the container would fail to start.
	CgroupV2 bool
	// Log receives one line per container the plugin changes and the NRI
	// stub's messages (its chatter at debug level). Nil discards.
	Log *slog.Logger
	// OnEvent, if set, is called for every container the plugin changes, on
	// the runtime's request path: it must return quickly. The agent uses it
	// to tell "protected at creation" from "repaired".
	OnEvent func(Event)
}

// Phase says when the plugin changed a container.
type Phase string

const (
	// PhaseCreate: the container was adjusted while created, before any
	// of its processes ran ("protected at creation").
	PhaseCreate Phase = "create"
	// PhaseUpdate: a resource update (an in-place resize) would have set
	// memory.oom.group against the policy; the plugin replaced the value.
	PhaseUpdate Phase = "update"
	// PhaseSync: the container existed when the plugin connected and its
	// memory.oom.group was corrected through the runtime. Its
	// oom_score_adj is left to the agent.
	PhaseSync Phase = "sync"
)

// Event describes one container the plugin changed.
type Event struct {
	Phase       Phase
	ContainerID string
	Container   string
	Pod         policy.Target
	// OOMGroup is the memory.oom.group value requested, "" if untouched.
	OOMGroup string
	// Adj is the oom_score_adj requested when AdjSet (creation only).
	Adj    int
	AdjSet bool
	Reason string
}

// Stats counts what the plugin did since it was created, across
// reconnects.
type Stats struct {
	// Syncs counts Synchronize calls: one per (re)connection.
	Syncs uint64
	// Created counts CreateContainer requests seen.
	Created uint64
	// ProtectedAtCreation counts containers adjusted while created.
	ProtectedAtCreation uint64
	// Updated counts resource updates in which memory.oom.group was held.
	Updated uint64
	// SyncFixed counts existing containers whose memory.oom.group the
	// plugin corrected when it connected.
	SyncFixed uint64
	// SyncAdjLeft counts existing target containers whose oom_score_adj
	// differs from the policy: NRI cannot change it, the agent must.
	SyncAdjLeft uint64
	// Failures counts handler panics that were recovered; the container
	// went ahead without the plugin's change.
	Failures uint64
}

type counters struct {
	syncs, created, protected, updated, syncFixed, syncAdjLeft, failures atomic.Uint64
}

// Plugin implements the NRI stub's handler interfaces. Its methods are
// called by the stub; use Run to connect it to a runtime.
type Plugin struct {
	cfg   Config
	log   *slog.Logger
	stats counters
}

var (
	_ stub.ConfigureInterface       = (*Plugin)(nil)
	_ stub.SynchronizeInterface     = (*Plugin)(nil)
	_ stub.CreateContainerInterface = (*Plugin)(nil)
	_ stub.UpdateContainerInterface = (*Plugin)(nil)
)

// New checks cfg and returns a plugin.
func New(cfg Config) (*Plugin, error) {
	if err := cfg.Policy.Validate(); err != nil {
		return nil, fmt.Errorf("invalid policy: %w", err)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Plugin{cfg: cfg, log: log}, nil
}

// Stats returns a snapshot of the counters.
func (p *Plugin) Stats() Stats {
	s := &p.stats
	return Stats{
		Syncs:               s.syncs.Load(),
		Created:             s.created.Load(),
		ProtectedAtCreation: s.protected.Load(),
		Updated:             s.updated.Load(),
		SyncFixed:           s.syncFixed.Load(),
		SyncAdjLeft:         s.syncAdjLeft.Load(),
		Failures:            s.failures.Load(),
	}
}

// Configure subscribes to the events the plugin needs. A configuration
// string from the runtime (/etc/nri/conf.d) is not read: the policy comes
// from podwarden's own flags and file, the same ones the agent uses.
func (p *Plugin) Configure(ctx context.Context, config, runtime, version string) (api.EventMask, error) {
	p.log.InfoContext(ctx, "nri: connected", "runtime", runtime, "runtime_version", version, "cgroup_v2", p.cfg.CgroupV2)
	if strings.TrimSpace(config) != "" {
		p.log.WarnContext(ctx, "nri: ignoring the plugin configuration passed by the runtime; use --config")
	}
	return api.MustParseEventMask("CreateContainer", "UpdateContainer"), nil
}

// Synchronize corrects memory.oom.group on target containers that already
// exist when the plugin connects (after a node reboot with the plugin
// starting late, or a runtime restart). Their oom_score_adj cannot be
// changed through NRI; they are counted and left to the agent.
func (p *Plugin) Synchronize(ctx context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	p.stats.syncs.Add(1)
	var updates []*api.ContainerUpdate
	p.safely(ctx, "Synchronize", nil, func() { updates = p.synchronize(ctx, pods, ctrs) })
	return updates, nil
}

func (p *Plugin) synchronize(ctx context.Context, pods []*api.PodSandbox, ctrs []*api.Container) []*api.ContainerUpdate {
	byID := make(map[string]*api.PodSandbox, len(pods))
	for _, pod := range pods {
		byID[pod.GetId()] = pod
	}
	var updates []*api.ContainerUpdate
	targets, adjLeft := 0, 0
	for _, ctr := range ctrs {
		switch ctr.GetState() {
		case api.ContainerState_CONTAINER_CREATED, api.ContainerState_CONTAINER_RUNNING, api.ContainerState_CONTAINER_PAUSED:
		default:
			continue
		}
		pod, ok := byID[ctr.GetPodSandboxId()]
		if !ok {
			continue
		}
		d := p.cfg.Policy.Decide(targetOf(pod))
		if !d.Target {
			continue
		}
		targets++
		c := plan(d, p.cfg.CgroupV2)
		if c.adjSet {
			if cur := ctr.GetLinux().GetOomScoreAdj(); cur == nil || int(cur.GetValue()) != c.adj {
				adjLeft++
			}
		}
		u := c.fix(ctr.GetId(), ctr.GetLinux().GetResources())
		if u == nil {
			continue
		}
		updates = append(updates, u)
		p.emit(ctx, Event{Phase: PhaseSync, ContainerID: ctr.GetId(), Container: ctr.GetName(),
			Pod: targetOf(pod), OOMGroup: c.oomGroup, Reason: d.Reason})
	}
	p.stats.syncFixed.Add(uint64(len(updates)))
	p.stats.syncAdjLeft.Add(uint64(adjLeft))
	p.log.InfoContext(ctx, "nri: synchronized", "pods", len(pods), "containers", len(ctrs),
		"targets", targets, "oom_group_fixed", len(updates), "adj_left_to_agent", adjLeft)
	return updates
}

// CreateContainer adjusts a target container before it runs.
func (p *Plugin) CreateContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	p.stats.created.Add(1)
	var adj *api.ContainerAdjustment
	p.safely(ctx, "CreateContainer", ctr, func() {
		d := p.cfg.Policy.Decide(targetOf(pod))
		c := plan(d, p.cfg.CgroupV2)
		if c.empty() {
			p.log.DebugContext(ctx, "nri: left alone", "namespace", pod.GetNamespace(), "pod", pod.GetName(),
				"container", ctr.GetName(), "reason", d.Reason)
			return
		}
		adj = c.adjustment()
		p.stats.protected.Add(1)
		p.emit(ctx, Event{Phase: PhaseCreate, ContainerID: ctr.GetId(), Container: ctr.GetName(),
			Pod: targetOf(pod), OOMGroup: c.oomGroup, Adj: c.adj, AdjSet: c.adjSet, Reason: d.Reason})
	})
	return adj, nil, nil
}

// UpdateContainer keeps memory.oom.group at the policy's value when a
// resource update (kubelet's in-place resize) asks for another one.
func (p *Plugin) UpdateContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container, res *api.LinuxResources) ([]*api.ContainerUpdate, error) {
	var updates []*api.ContainerUpdate
	p.safely(ctx, "UpdateContainer", ctr, func() {
		d := p.cfg.Policy.Decide(targetOf(pod))
		c := plan(d, p.cfg.CgroupV2)
		u := c.hold(ctr.GetId(), res)
		if u == nil {
			return
		}
		updates = []*api.ContainerUpdate{u}
		p.stats.updated.Add(1)
		p.emit(ctx, Event{Phase: PhaseUpdate, ContainerID: ctr.GetId(), Container: ctr.GetName(),
			Pod: targetOf(pod), OOMGroup: c.oomGroup, Reason: d.Reason})
	})
	return updates, nil
}

// emit logs a change and hands it to OnEvent.
func (p *Plugin) emit(ctx context.Context, ev Event) {
	attrs := []any{"phase", ev.Phase, "namespace", ev.Pod.Namespace, "pod", ev.Pod.Name,
		"container", ev.Container, "container_id", ev.ContainerID, "reason", ev.Reason}
	if ev.OOMGroup != "" {
		attrs = append(attrs, "oom_group", ev.OOMGroup)
	}
	if ev.AdjSet {
		attrs = append(attrs, "oom_score_adj", ev.Adj)
	}
	p.log.InfoContext(ctx, "nri: protected", attrs...)
	if p.cfg.OnEvent != nil {
		p.cfg.OnEvent(ev)
	}
}

// safely runs a handler body so that a bug in it costs one container its
// protection instead of the runtime its plugin: an unrecovered panic would
// kill the process, and every container created until the DaemonSet
// restarts it would go unprotected. fn assigns its results only once they
// are complete, so a panic while computing them leaves "no change"; a
// panic after that (in OnEvent) keeps the change.
func (p *Plugin) safely(ctx context.Context, op string, ctr *api.Container, fn func()) {
	defer func() {
		if r := recover(); r != nil {
			p.stats.failures.Add(1)
			p.log.ErrorContext(ctx, "nri: handler panicked; the runtime's request goes ahead",
				"op", op, "container", ctr.GetName(), "container_id", ctr.GetId(), "panic", r)
		}
	}()
	fn()
}
