package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sort"
	"sync/atomic"
	"time"

	"podwarden/internal/cgroup"
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

// Bounds of FastInterval. Below the minimum the cheap pass becomes a busy
// loop on a node that may already be short of CPU; above the maximum a
// restored memory.oom.group flag stays unrepaired for too long. (The
// policy's full Interval has its own bounds, policy.MinInterval and
// policy.MaxInterval.)
const (
	MinFastInterval = 100 * time.Millisecond
	MaxFastInterval = 10 * time.Minute
)

// Config is what an agent works on.
type Config struct {
	Policy  policy.Config
	Proc    procfs.FS
	Cgroups cgroup.FS
	// Runtime is nil in runtime-less mode, where Policy.CgroupSelector
	// chooses the targets.
	Runtime Runtime
	// DryRun plans changes without writing anything, not even the
	// agent's own oom_score_adj.
	DryRun bool
	Log    *slog.Logger
	// Metrics may be nil.
	Metrics *Metrics
	// KmsgPath is the kernel log device read for OOM reports.
	KmsgPath string
	// KernelLog chooses where OOM kills are learnt from: SourceAuto (the
	// default when KmsgPath is set) tries KmsgPath, then syslog(2), then
	// memory.events counters; SourceMemoryEvents (the default when
	// KmsgPath is "") reads only the counters.
	KernelLog string
	// Reporter posts OOM kills as Kubernetes Events; may be nil. It
	// never waits (an outbox), so the protection loop calls it.
	Reporter Reporter
	// FastInterval is how often target cgroups are re-checked cheaply
	// (oom.group flags, new pids when the process connector is down,
	// memory.events). Policy.Interval is the full reconcile. Zero means 2s.
	FastInterval time.Duration
	// PodLogDir is the kubelet's pod log directory (podname.DefaultLogDir),
	// which names pods in runtime-less mode; "" leaves them as UIDs.
	PodLogDir string
	// OwnNamespace is the Kubernetes namespace the agent runs in. Its pods
	// are never targets, whatever the policy selects: raising the agent's
	// own pods to 900 would make them the OOM killer's first choice on the
	// node they protect.
	OwnNamespace string
}

// Agent keeps the policy true on one node. All state is owned by the Run
// goroutine; Reconcile may be used instead of Run for one-shot passes.
type Agent struct {
	cfg  Config
	proc procfs.FS
	cg   cgroup.FS
	rt   Runtime
	log  *slog.Logger
	m    *Metrics
	self int
	// selfPod is the agent's own pod UID from its cgroup path ("" outside
	// a pod): never a target.
	selfPod string
	targets map[string]*Target
	// byPID finds the target of a process the agent has seen, so an exit
	// event drops it from its target's state.
	byPID map[int]*Target
	// hostFixed are the host processes the agent lowered (pid -> start
	// time), so a repeat is counted as drift and a recycled pid is not.
	hostFixed map[int]uint64
	// exported counts the targets behind each series of
	// podwarden_protected_container_info.
	exported map[[3]string]int
	// pods is the runtime's last answer (container id -> pod), nil before
	// the first one and in runtime-less mode.
	pods map[string]*podInfo
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
	// kernelLog is where OOM kills are learnt from (a Source* constant).
	kernelLog string
	sched     schedule
	// pending are new container-like cgroups in runtime mode that no
	// runtime answer has named yet (cgroup -> when seen).
	pending map[string]time.Time
	// podNames names runtime-less targets' pods.
	podNames podNames
	lister   *lister
	health   health
	ready    atomic.Bool
	// explain is set during a one-shot Reconcile, which collects
	// candidates: every container considered and why it is a target or not.
	explain    bool
	candidates []Candidate
	// snap is what TargetSnapshot hands to other goroutines.
	snap atomic.Pointer[targetSnapshot]
}

// New validates cfg (Check, after filling in defaults) and returns an
// agent.
func New(cfg Config) (*Agent, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.FastInterval == 0 {
		cfg.FastInterval = 2 * time.Second
	}
	if cfg.Policy.Interval == 0 {
		cfg.Policy.Interval = 10 * time.Second
	}
	if cfg.KernelLog == "" {
		cfg.KernelLog = SourceAuto
	}
	if err := cfg.Check(cfg.Runtime != nil); err != nil {
		return nil, err
	}
	if cfg.KernelLog == SourceAuto && cfg.KmsgPath == "" {
		// No device to try: syslog(2) reads the same ring and is not
		// what was asked for.
		cfg.KernelLog = SourceMemoryEvents
	}
	a := &Agent{
		cfg: cfg, proc: cfg.Proc, cg: cfg.Cgroups, rt: cfg.Runtime, log: cfg.Log, m: cfg.Metrics,
		self: os.Getpid(), targets: map[string]*Target{}, byPID: map[int]*Target{}, hostFixed: map[int]uint64{},
		exported: map[[3]string]int{},
		pending:  map[string]time.Time{}, kernelLog: SourceMemoryEvents, podNames: newPodNames(cfg.PodLogDir),
	}
	a.health.init(cfg.FastInterval, cfg.Policy.Interval)
	if cfg.Reporter != nil {
		cfg.Reporter.Observe(eventObserver{dep: a.health.dependency("kube-apiserver", a.m), m: a.m})
	}
	a.ns = a.resolver()
	return a, nil
}

// Check reports the first setting of c the agent refuses, as a
// *ConfigError; withRuntime says whether a container runtime will be
// given (without one, the policy may not select by labels or namespaces).
// New calls it; a command calls it before it dials anything, so a wrong
// flag is named before a missing runtime is.
func (c Config) Check(withRuntime bool) error {
	if !withRuntime {
		if err := c.Policy.CheckRuntimeless(c.OwnNamespace); err != nil {
			return &ConfigError{Setting: "Policy", Err: err}
		}
	}
	if err := CheckFastInterval(c.FastInterval); err != nil {
		return &ConfigError{Setting: "FastInterval", Value: c.FastInterval, Err: err}
	}
	if err := policy.CheckInterval(c.Policy.Interval); err != nil {
		return &ConfigError{Setting: "Interval", Value: c.Policy.Interval, Err: err}
	}
	switch c.KernelLog {
	case SourceAuto, SourceKmsg, SourceSyslog, SourceMemoryEvents:
	default:
		return &ConfigError{Setting: "KernelLog", Value: c.KernelLog,
			Err: fmt.Errorf("want one of %s, %s, %s, %s", SourceAuto, SourceKmsg, SourceSyslog, SourceMemoryEvents)}
	}
	return nil
}

// ConfigError is a Config setting the agent refuses. Setting is the
// field's name, so a command can name its own flag instead.
type ConfigError struct {
	Setting string
	Value   any
	Err     error
}

func (e *ConfigError) Error() string {
	if e.Value == nil {
		return e.Err.Error()
	}
	return fmt.Sprintf("%s %v: %v", e.Setting, e.Value, e.Err)
}

func (e *ConfigError) Unwrap() error { return e.Err }

// CheckFastInterval reports a fast interval outside its bounds.
func CheckFastInterval(d time.Duration) error {
	if d < MinFastInterval || d > MaxFastInterval {
		return fmt.Errorf("%v is outside %v..%v", d, MinFastInterval, MaxFastInterval)
	}
	return nil
}

// resolver finds the agent's cgroup namespace root in the host tree, and
// the agent's own pod. Where the agent cannot see itself (fixture trees,
// another PID namespace) paths are used as read.
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
		r = cgroup.Resolver{}
	} else if r.Root != "/" {
		a.log.Info("private cgroup namespace: resolving cgroup paths against the host tree", "namespace_root", r.Root)
	}
	a.selfPod = cgroup.ParsePath(r.Host(self)).PodUID
	return r
}

// Reconcile discovers targets and makes one full pass: oom.group flags,
// every target process's adj, protected host processes. It returns every
// change made (or planned, in a dry run); errors of single writes are in
// each Change, the returned error is for discovery failing. Called on its
// own (--once), it asks the runtime and waits for the answer; inside Run
// it uses the runtime's last answer and never waits.
func (a *Agent) Reconcile(ctx context.Context) ([]Change, error) {
	// On its own, the pass also records why each container is or is not a
	// target (Candidates).
	a.explain, a.candidates = a.lister == nil, nil
	defer func() { a.explain = false }()
	if a.rt != nil && a.lister == nil {
		pods, err := a.runtimePods(ctx)
		if err != nil {
			a.countError("discover", err)
			return nil, err
		}
		a.pods = pods
	}
	changes := a.reconcile(ctx)
	if a.explain {
		a.explainTargets()
	}
	return changes, nil
}

// reconcile is a full pass with what the agent knows now.
func (a *Agent) reconcile(ctx context.Context) []Change {
	start := time.Now()
	a.health.enter("full pass")
	defer func() {
		a.m.Reconcile.WithLabelValues("full").Observe(time.Since(start).Seconds())
		a.health.passDone(true)
	}()
	// Walking the whole cgroup tree is most of a pass's cost. While the
	// cgroup watcher reports every new and removed directory, the targets
	// it maintained are used and the tree is rediscovered only with the
	// host scan.
	full := a.forceFull || a.passes%hostScanEvery == 0 || !a.procEventsOn
	a.forceFull = false
	if full || !a.dirEventsOn {
		a.health.enter("discover")
		targets, err := a.discover(ctx)
		if err != nil {
			a.countError("discover", err)
			a.log.Warn("discover", "err", err)
		} else {
			a.setTargets(targets)
		}
	}
	a.health.enter("plan")
	var changes []Change
	var errs []error
	nprocs := 0
	for _, cg := range sortedKeys(a.targets) {
		n, terrs := a.planTarget(ctx, a.targets[cg], &changes)
		nprocs += n
		errs = append(errs, terrs...)
	}
	a.m.ProtectedProcesses.Set(float64(nprocs))
	// New host daemons are caught at exec by the process connector; the
	// full scan of every process is the safety net, and at thousands of
	// processes the costliest part of a pass, so with the connector it
	// runs every hostScanEvery passes.
	if full {
		a.health.enter("host scan")
		if err := a.planHost(ctx, &changes); err != nil {
			errs = append(errs, err)
		}
	}
	a.passes++
	a.health.enter("apply")
	changes = a.apply(changes)
	for _, err := range errs {
		a.countError("plan", err)
		a.log.Warn("reconcile", "err", err)
	}
	a.ready.Store(a.rt == nil || a.pods != nil)
	return changes
}

// Targets returns the targets found by the last reconcile, sorted by cgroup.
func (a *Agent) Targets() []Target {
	out := make([]Target, 0, len(a.targets))
	for _, cg := range sortedKeys(a.targets) {
		out = append(out, *a.targets[cg])
	}
	return out
}

// Ready reports whether a full reconcile has completed (in runtime mode,
// one that had the runtime's answer).
func (a *Agent) Ready() bool { return a.ready.Load() }

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
	case errors.Is(c.Err, fs.ErrNotExist):
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
		a.log.Debug("target gone", append(attrs, "err", c.Err)...)
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
