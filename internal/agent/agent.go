package agent

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"sort"
	"sync/atomic"
	"time"

	"podwarden/internal/cgroup"
	"podwarden/internal/cri"
	"podwarden/internal/policy"
	"podwarden/internal/procfs"
)

// SelfAdj is the agent's own oom_score_adj: below every pod and daemon it
// protects, so it outlives the OOMs it handles, and above the runtime
// (-999) and conmon (-1000), which it must not outlive.
const SelfAdj = -998

// hostScanEvery is how many full passes share one scan of every process for
// protected host daemons while the process connector is on.
const hostScanEvery = 6

// Config is what an agent works on.
type Config struct {
	Policy  policy.Config
	Proc    procfs.FS
	Cgroups cgroup.FS
	// Runtime is nil in runtime-less mode, where Policy.CgroupSelector
	// chooses the targets.
	Runtime cri.Runtime
	// DryRun plans changes without writing anything, not even the
	// agent's own oom_score_adj.
	DryRun bool
	Log    *slog.Logger
	// Metrics may be nil.
	Metrics *Metrics
	// KmsgPath is the kernel log device read for OOM reports ("" to
	// skip it and rely on memory.events counters).
	KmsgPath string
	// Reporter posts OOM kills as Kubernetes Events; may be nil.
	Reporter Reporter
	// FastInterval is how often target cgroups are re-checked cheaply
	// (oom.group flags, new pids when the process connector is down,
	// memory.events). Policy.Interval is the full reconcile.
	FastInterval time.Duration
}

// Agent keeps the policy true on one node. All state is owned by the Run
// goroutine; Reconcile may be used instead of Run for one-shot passes.
type Agent struct {
	cfg     Config
	proc    procfs.FS
	cg      cgroup.FS
	rt      cri.Runtime
	log     *slog.Logger
	m       *Metrics
	self    int
	targets map[string]*Target
	// fixed remembers writes already made, so a repeat is counted as drift.
	fixed map[string]bool
	// known are the pids already checked per target, so the fast path only
	// reads new processes.
	known   map[string]map[int]bool
	oomSeen map[string]uint64
	// ns maps cgroup paths from /proc/PID/cgroup into the host tree when
	// the agent runs in a private cgroup namespace.
	ns cgroup.Resolver
	// passes counts full reconciles; procEventsOn is set while the
	// process connector delivers events.
	passes       int
	procEventsOn bool
	dirEventsOn  bool
	// forceFull makes the next pass rediscover and rescan everything:
	// set when an event source lost events.
	forceFull bool
	// kmsgSeen is set when the kernel log is open: OOM kills are then
	// counted from its reports rather than from memory.events.
	kmsgSeen bool
	ready    atomic.Bool
	lastRun  atomic.Int64
}

// New validates cfg and returns an agent.
func New(cfg Config) (*Agent, error) {
	if cfg.Runtime == nil && cfg.Policy.CgroupSelector == "" {
		return nil, errors.New("no container runtime and no cgroup selector: nothing selects the target containers")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.FastInterval <= 0 {
		cfg.FastInterval = 2 * time.Second
	}
	if cfg.Policy.Interval <= 0 {
		cfg.Policy.Interval = 10 * time.Second
	}
	a := &Agent{
		cfg: cfg, proc: cfg.Proc, cg: cfg.Cgroups, rt: cfg.Runtime, log: cfg.Log, m: cfg.Metrics,
		self: os.Getpid(), targets: map[string]*Target{}, fixed: map[string]bool{},
		known: map[string]map[int]bool{}, oomSeen: map[string]uint64{},
	}
	a.ns = a.resolver()
	return a, nil
}

// resolver finds the agent's cgroup namespace root in the host tree. Where
// the agent cannot see itself (fixture trees, another PID namespace) paths
// are used as read.
func (a *Agent) resolver() cgroup.Resolver {
	p, err := a.proc.Read(a.self, procfs.FieldCgroup)
	if err != nil {
		return cgroup.Resolver{}
	}
	self := p.CgroupV1Memory
	if a.cg.Version() == cgroup.V2 {
		self = p.Cgroup
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := a.cg.NewResolver(ctx, a.self, self)
	if err != nil {
		a.log.Warn("cannot place own cgroup namespace in the host tree: using cgroup paths as read", "err", err)
		return cgroup.Resolver{}
	}
	if r.Root != "/" {
		a.log.Info("private cgroup namespace: resolving cgroup paths against the host tree", "namespace_root", r.Root)
	}
	return r
}

// Reconcile discovers targets and makes one full pass: oom.group flags,
// every target process's adj, protected host processes. It returns every
// change made (or planned, in a dry run); errors of single writes are in
// each Change, the returned error is for discovery failing.
func (a *Agent) Reconcile(ctx context.Context) ([]Change, error) {
	start := time.Now()
	defer func() {
		a.m.Reconcile.WithLabelValues("full").Observe(time.Since(start).Seconds())
		a.lastRun.Store(time.Now().UnixNano())
	}()
	// Walking the whole cgroup tree is most of a pass's cost. While the
	// cgroup watcher reports every new and removed directory, the targets
	// it maintained are used and the tree is rediscovered only with the
	// host scan.
	targets := a.targets
	full := a.forceFull || a.passes%hostScanEvery == 0 || !a.procEventsOn
	a.forceFull = false
	if full || !a.dirEventsOn {
		var err error
		if targets, err = a.discover(ctx); err != nil {
			a.countError("discover", err)
			return nil, err
		}
	}
	a.targets = targets
	for cg := range a.known {
		if _, ok := targets[cg]; !ok {
			delete(a.known, cg)
		}
	}
	a.m.ProtectedContainers.Set(float64(len(targets)))

	var changes []Change
	var errs []error
	nprocs := 0
	for _, cg := range sortedKeys(targets) {
		n, terrs := a.planTarget(ctx, targets[cg], &changes)
		nprocs += n
		errs = append(errs, terrs...)
	}
	a.m.ProtectedProcesses.Set(float64(nprocs))
	// New host daemons are caught at exec by the process connector; the
	// full scan of every process is the safety net, and at thousands of
	// processes the costliest part of a pass, so with the connector it
	// runs every hostScanEvery passes.
	if full {
		if err := a.planHost(ctx, &changes); err != nil {
			errs = append(errs, err)
		}
	}
	a.passes++
	changes = a.apply(changes)
	for _, err := range errs {
		a.countError("plan", err)
		a.log.Warn("reconcile", "err", err)
	}
	a.ready.Store(true)
	return changes, nil
}

// Targets returns the targets found by the last reconcile, sorted by cgroup.
func (a *Agent) Targets() []Target {
	out := make([]Target, 0, len(a.targets))
	for _, cg := range sortedKeys(a.targets) {
		out = append(out, *a.targets[cg])
	}
	return out
}

// Ready reports whether a full reconcile has completed.
func (a *Agent) Ready() bool { return a.ready.Load() }

// Alive reports whether the loop has made a full pass recently.
func (a *Agent) Alive() bool {
	last := a.lastRun.Load()
	return last != 0 && time.Since(time.Unix(0, last)) < 3*a.cfg.Policy.Interval+time.Minute
}

// protectSelf lowers the agent's own adj so the OOMs it handles do not
// take it first.
func (a *Agent) protectSelf() {
	if a.cfg.DryRun {
		return
	}
	if err := a.proc.WriteOOMScoreAdj(a.self, SelfAdj); err != nil {
		a.log.Warn("could not lower own oom_score_adj", "adj", SelfAdj, "err", err)
	}
}

func (a *Agent) record(c Change) {
	result := "ok"
	switch {
	case errors.Is(c.Err, errGone):
		result = "gone"
	case c.Err != nil:
		result = "error"
	}
	a.m.Changes.WithLabelValues(string(c.Kind), result).Inc()
	if c.Drift && c.Err == nil {
		a.m.DriftRepairs.WithLabelValues(string(c.Kind)).Inc()
	}
	attrs := []any{"kind", c.Kind, "target", c.What(), "from", c.From, "to", c.To, "pod", c.Pod, "container", c.Container, "drift", c.Drift}
	switch result {
	case "ok":
		a.log.Info("changed", attrs...)
	case "gone":
		a.log.Debug("target gone", attrs...)
	default:
		a.log.Error("write failed", append(attrs, "err", c.Err)...)
	}
}

func (a *Agent) countError(op string, err error) {
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	a.m.Errors.WithLabelValues(op).Inc()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
