package preempt

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"podwarden/internal/cgroup"
	"podwarden/internal/oom"
	"podwarden/internal/policy"
	"podwarden/internal/procfs"
)

// Config is what an engine works on.
type Config struct {
	Policy  policy.Preempt
	Proc    procfs.FS
	Cgroups cgroup.FS
	// Targets returns the current target containers and their
	// generation, which changes whenever they do (the agent's snapshot
	// and its number). It is called from the engine's goroutine at every
	// step and must be safe for that; the engine looks at ts only when
	// gen changed, and never changes it.
	Targets func() (ts []Target, gen uint64)
	// Reporter posts Events; nil disables them.
	Reporter Reporter
	Log      *slog.Logger
	Metrics  *Metrics
	// DryRun reports and never signals, whatever the policy says.
	DryRun bool
	// LockMemory locks the agent's pages in memory once the engine is
	// warm (mlockall), so its own code is not evicted and read back from
	// disk in the middle of the thrashing it is there to stop.
	LockMemory bool

	// Now and Signaler replace the clock and the pidfd signaler in tests
	// on fixture trees.
	Now      func() time.Time
	Signaler Signaler
}

// Engine watches memory pressure and acts. All state is owned by the Run
// goroutine.
type Engine struct {
	cfg  Config
	pol  policy.Preempt
	log  *slog.Logger
	m    *Metrics
	now  func() time.Time
	sig  Signaler
	spec cgroup.Trigger

	node      history
	nodeH     health
	swapTotal uint64
	psiFile   string
	nodeTrig  *cgroup.TriggerFD
	// cgTriggers is false once arming a container trigger failed for a
	// reason other than the cgroup being gone (cgroup v1, no PSI).
	cgTriggers  bool
	polled      bool // no node trigger: pressure is polled
	nodeTrigErr error
	// nodeTrigFile is the file the node trigger is armed on; nodeFired
	// when it last woke the loop.
	nodeTrigFile string
	nodeFired    time.Time

	targets map[string]*targetState
	// synced is the target set last taken from cfg.Targets, gen its
	// generation (valid once hasGen is true). rearm says a target may be
	// armed now that could not be at the last sync: a trigger was closed
	// or a gone cgroup came back.
	synced   []Target
	gen      uint64
	hasGen   bool
	rearm    bool
	episodes map[string]*episode
	lastKill map[string]time.Time
	// retryAt is when a scope whose kill was refused is looked at again;
	// refusedAt when a refusal (scope key/reason) was last reported.
	retryAt   map[string]time.Time
	refusedAt map[string]time.Time
	// warned are victims left alive after a signal (procKey), so a
	// process growing again within the cooldown gets the next step.
	warned   map[string]warning
	settle   time.Time
	lastFull time.Time
	// pending is set by a step that judged a scope in danger by a fall
	// seen for the first time (health.pending): the next sample, half a
	// tick later, confirms it or not.
	pending bool
	// calmShort is set once the node's being below minAvailable without
	// pressure has been said; it is cleared above releaseAvailable.
	calmShort bool

	reports chan report
}

type targetState struct {
	t    Target
	h    history
	trig *cgroup.TriggerFD
	// gone is set when the cgroup has disappeared while the snapshot
	// still lists it (the agent has not caught up): never a candidate.
	gone bool
	// procs is the recent history of its processes' private memory;
	// procAt and procCommitted when it was last added to and the target's
	// committed memory then.
	procs         procHist
	procAt        time.Time
	procCommitted uint64
	// trigFile is the file trig is armed on; fired when it last woke the
	// loop.
	trigFile string
	fired    time.Time
}

// Timing of the loop.
const (
	tick       = 100 * time.Millisecond // while an episode runs or a scope is in danger
	lowTick    = 250 * time.Millisecond // below releaseAvailable, not in danger
	calmMax    = time.Second            // longest sleep while calm, with PSI triggers
	pollMax    = 250 * time.Millisecond // longest sleep while calm, pressure polled
	fullEvery  = 2 * time.Second        // every target's usage, for growth
	settleGone = 2 * time.Second        // after a target vanished mid-episode
	stuckAfter = 30 * time.Second       // a SIGKILLed victim that has not exited
	exitGrace  = 3 * time.Second        // memory back after a signal: the victim may be exiting
	exitSettle = 2 * time.Second        // a container emptied at once: is its cgroup going too?
	// maxTriggers bounds the per-container PSI triggers: each costs the
	// kernel a poll worker for that cgroup.
	maxTriggers = 512
	// assumedRate is how fast memory is assumed to fill when choosing the
	// next sleep from the headroom left (a fast hog under TCG does
	// ~200 MiB/s; hardware a few GiB/s).
	assumedRate = 2 << 30
)

// New checks cfg and returns an engine; Run starts it.
func New(cfg Config) (*Engine, error) {
	if cfg.Targets == nil {
		return nil, errors.New("preempt: no target source")
	}
	if cfg.Proc.Root() == "" {
		return nil, errors.New("preempt: no proc filesystem")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Signaler == nil {
		cfg.Signaler = pidfdSignaler{proc: cfg.Proc}
	}
	pol := cfg.Policy
	if cfg.DryRun {
		pol.DryRun = true
	}
	e := &Engine{
		cfg: cfg, pol: pol, log: cfg.Log.With("component", "preempt"), m: cfg.Metrics, now: cfg.Now, sig: cfg.Signaler,
		spec:     cgroup.Trigger{Full: pol.Pressure.Full, Stall: pol.Pressure.Stall, Window: pol.Pressure.Window},
		psiFile:  filepath.Join(cfg.Proc.Root(), "pressure", "memory"),
		targets:  map[string]*targetState{},
		episodes: map[string]*episode{},
		lastKill: map[string]time.Time{},
		retryAt:  map[string]time.Time{}, refusedAt: map[string]time.Time{}, warned: map[string]warning{},
		reports: make(chan report, reportQueue),
	}
	e.cgTriggers = cfg.Cgroups.Version() == cgroup.V2
	return e, nil
}

// Run watches and acts until ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	go e.reportLoop(ctx, e.reports)
	e.armNode()
	defer e.closeAll()
	// A pipe wakes poll(2) when ctx ends.
	var wake [2]int
	if err := unix.Pipe2(wake[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return fmt.Errorf("preempt: wake pipe: %w", err)
	}
	defer unix.Close(wake[0])
	defer unix.Close(wake[1])
	stop := context.AfterFunc(ctx, func() { unix.Write(wake[1], []byte{0}) })
	defer stop()

	defer e.raisePriority()()
	e.step(nil)
	e.warmUp()
	if e.cfg.LockMemory {
		// Pages touched so far (the whole engine path, warmed up above)
		// are locked now, later ones as they are faulted in.
		if err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE | unix.MCL_ONFAULT); err != nil {
			e.log.Warn("cannot lock the agent's pages in memory: under thrashing its own code may be read back from disk (needs CAP_IPC_LOCK)", "err", err)
		}
	}
	e.logStart()

	var fds []unix.PollFd
	var owners []string // per fd: "" wake, nodeKey, "cg:"+cgroup, "ep:"+key
	for {
		fds, owners = e.pollSet(fds[:0], owners[:0], wake[0])
		_, err := unix.Poll(fds, int(e.sleep()/time.Millisecond))
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("preempt: poll: %w", err)
		}
		fired := map[string]bool{}
		for i, f := range fds {
			if f.Revents == 0 || owners[i] == "" {
				continue
			}
			if owners[i] == nodeKey && f.Revents&unix.POLLPRI != 0 {
				e.noteFired(nodeKey, e.now())
			}
			if cg, ok := cutPrefix(owners[i], "cg:"); ok {
				if f.Revents&unix.POLLPRI != 0 {
					e.noteFired(cg, e.now())
				}
				if f.Revents&(unix.POLLERR|unix.POLLNVAL) != 0 {
					// The cgroup was removed: its trigger is dead.
					e.disarm(cg)
				}
				fired[cg] = true
			}
		}
		e.step(fired)
	}
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return "", false
}

// pollSet lists what wakes the loop: ctx, the node trigger, every target
// trigger and every victim's pidfd (readable when it exits).
func (e *Engine) pollSet(fds []unix.PollFd, owners []string, wake int) ([]unix.PollFd, []string) {
	fds = append(fds, unix.PollFd{Fd: int32(wake), Events: unix.POLLIN})
	owners = append(owners, "")
	if e.nodeTrig != nil {
		fds = append(fds, unix.PollFd{Fd: int32(e.nodeTrig.Fd()), Events: unix.POLLPRI})
		owners = append(owners, nodeKey)
	}
	for cg, st := range e.targets {
		if st.trig != nil {
			fds = append(fds, unix.PollFd{Fd: int32(st.trig.Fd()), Events: unix.POLLPRI})
			owners = append(owners, "cg:"+cg)
		}
	}
	for k, ep := range e.episodes {
		if ep.h != nil && ep.ended.IsZero() && ep.h.Fd() >= 0 {
			fds = append(fds, unix.PollFd{Fd: int32(ep.h.Fd()), Events: unix.POLLIN})
			owners = append(owners, "ep:"+k)
		}
	}
	return fds, owners
}

// sleep is how long the loop may wait for a trigger: a tick while an
// episode runs or memory is below releaseAvailable, otherwise the time
// the headroom above minAvailable lasts at assumedRate.
func (e *Engine) sleep() time.Duration {
	switch {
	case e.pending:
		return tick / 2
	case e.acting() || e.nodeH.level >= levelDanger:
		return tick
	case e.nodeH.level == levelLow:
		return lowTick
	}
	most := calmMax
	if e.polled {
		most = pollMax
	}
	floor := e.nodeH.lv.Min
	if e.nodeH.avail <= floor {
		return lowTick
	}
	d := time.Duration(float64(e.nodeH.avail-floor) / assumedRate * float64(time.Second))
	return max(tick, min(most, d))
}

// armNode opens the node's PSI trigger, on /proc/pressure/memory or, where
// that cannot be opened for writing (containerd's default AppArmor profile
// denies writes under /proc/<not a pid>/), on the root cgroup's
// memory.pressure: the same system-wide PSI group. /proc comes first: it
// is there on every hierarchy and names the node whatever cgroup tree is
// mounted; the refusal costs one audit record at start. Without a trigger
// on either, pressure is polled.
func (e *Engine) armNode() {
	t, err := e.openNode(e.psiFile)
	if err == nil {
		e.nodeTrig, e.nodeTrigFile = t, t.File()
		return
	}
	errs := []error{err}
	f, ferr := e.cfg.Cgroups.SystemPressureFile()
	switch {
	case ferr == nil:
		t, ferr = e.openNode(f)
		if ferr == nil {
			e.log.Info("node PSI trigger armed on the root cgroup's memory.pressure (the same system-wide pressure): "+e.psiFile+" refused it",
				"file", f, "err", err)
			e.nodeTrig, e.nodeTrigFile = t, t.File()
			return
		}
		errs = append(errs, ferr)
	case !errors.Is(ferr, errors.ErrUnsupported):
		errs = append(errs, ferr)
	}
	e.polled = true
	e.nodeTrigErr = joinSemi(errs)
}

// openNode arms the node trigger on file. Without CAP_SYS_RESOURCE, 6.5+
// kernels accept only windows in multiples of 2 s, so the window (and the
// stall, in proportion) is raised once before giving up on file.
func (e *Engine) openNode(file string) (*cgroup.TriggerFD, error) {
	t, err := cgroup.OpenTrigger(file, e.spec)
	if err != nil && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM)) && e.spec.Window%cgroup.UnprivilegedWindow != 0 {
		w := (e.spec.Window/cgroup.UnprivilegedWindow + 1) * cgroup.UnprivilegedWindow
		wider := cgroup.Trigger{Full: e.spec.Full, Window: w, Stall: e.spec.Stall * w / e.spec.Window}
		if t2, err2 := cgroup.OpenTrigger(file, wider); err2 == nil {
			e.log.Info("PSI trigger window raised: this process may only use multiples of 2s (no CAP_SYS_RESOURCE)", "trigger", wider.String(), "wanted", e.spec.String())
			t, err, e.spec = t2, nil, wider
		}
	}
	return t, err
}

// joinSemi joins errors on one line (errors.Join breaks lines, which a
// log line should not carry).
func joinSemi(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return fmt.Errorf("%w; %w", errs[0], joinSemi(errs[1:]))
}

// logStart says, once, how pressure is being watched.
func (e *Engine) logStart() {
	node := "psi trigger " + e.spec.String() + " on " + e.psiFile
	if e.nodeTrig != nil {
		node = "psi trigger " + e.spec.String() + " on " + e.nodeTrig.File()
	}
	if e.polled {
		if _, err := cgroup.ReadPressure(e.psiFile); err != nil {
			node = "none (no PSI: " + err.Error() + "); available memory still falling stands in for pressure"
		} else {
			node = fmt.Sprintf("polling %s every %v-%v (PSI triggers unavailable: %v)", e.psiFile, tick, pollMax, e.nodeTrigErr)
		}
	}
	containers := "psi triggers on each target's memory.pressure"
	switch {
	case e.cfg.Cgroups.Version() != cgroup.V2:
		containers = "none (cgroup " + e.cfg.Cgroups.Version().String() + " has no memory.pressure); usage against the limit only"
	case !e.cgTriggers:
		containers = "polled with usage every " + fullEvery.String() + " (triggers unavailable)"
	}
	e.log.Info("preempt engine running", "node_pressure", node, "container_pressure", containers,
		"dry_run", e.pol.DryRun, "node_min_available", e.pol.Node.Min().String(), "node_min_available_bytes", e.nodeH.lv.Min,
		"node_critical_available", e.pol.Node.Critical().String(), "node_release_available", e.pol.Node.Release().String(),
		"ladder", ladderString(e.pol.Ladder), "cooldown", e.pol.Cooldown, "targets", len(e.targets))
}

func ladderString(l []policy.Step) string {
	s := ""
	for i, st := range l {
		if i > 0 {
			s += " > "
		}
		s += st.Signal
		if st.Grace > 0 && i < len(l)-1 {
			s += " " + st.Grace.String()
		}
	}
	return s
}

// enginePriority is the engine thread's nice value, as earlyoom -p sets
// its own: under thrashing every task in direct reclaim competes for the
// CPU, and the one that can end it must not wait its turn behind them. At
// nice 0 in a one-CPU guest, the engine took 11-15 s from deciding on a
// fork storm's family to stopping it, and the kernel fired first.
const enginePriority = -20

// raisePriority pins the engine's goroutine to its thread (every step runs
// on it) and raises that thread's priority; the returned func gives both
// back when Run ends, so the thread goes back to the runtime as it was.
// Not allowed (no CAP_SYS_NICE) is said once and changes nothing else.
func (e *Engine) raisePriority() (restore func()) {
	runtime.LockOSThread()
	tid := unix.Gettid()
	// The raw syscall answers 20 - nice.
	was, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err == nil {
		err = unix.Setpriority(unix.PRIO_PROCESS, tid, enginePriority)
	}
	if err != nil {
		e.log.Warn("cannot raise the engine's CPU priority: under thrashing it competes with the processes in reclaim (needs CAP_SYS_NICE)", "nice", enginePriority, "err", err)
		return runtime.UnlockOSThread
	}
	return func() {
		// Lowering a priority needs no privilege.
		_ = unix.Setpriority(unix.PRIO_PROCESS, tid, 20-was)
		runtime.UnlockOSThread()
	}
}

// warmUp runs the code of an action once on the agent itself (a pidfd,
// signal 0, a message) so those pages are resident before they are
// locked and before they are first needed under thrashing.
func (e *Engine) warmUp() {
	if fd, err := unix.PidfdOpen(unix.Getpid(), 0); err == nil {
		_ = unix.PidfdSendSignal(fd, 0, nil, 0)
		unix.Close(fd)
	}
	_ = attribute(nil, &procHist{}, e.now(), time.Second, 0, e.pol.Keep, e.pol.KeepInit)
	_ = ladderString(e.pol.Ladder)
}

func (e *Engine) closeAll() {
	if e.nodeTrig != nil {
		e.nodeTrig.Close()
	}
	for cg := range e.targets {
		e.disarm(cg)
	}
	for _, ep := range e.episodes {
		if ep.h != nil {
			ep.h.Close()
		}
	}
}

func (e *Engine) disarm(cg string) {
	if st := e.targets[cg]; st != nil && st.trig != nil {
		st.trig.Close()
		st.trig = nil
		e.rearm = true
	}
}

// syncTargets takes the agent's current snapshot when it is a new one:
// new targets are armed, targets no longer listed are dropped with their
// history. An unchanged snapshot costs nothing per target (this runs at
// every step, up to ten times a second), unless a trigger is to be armed
// again.
func (e *Engine) syncTargets() {
	ts, gen := e.cfg.Targets()
	if !e.hasGen || gen != e.gen {
		e.synced, e.gen, e.hasGen = ts, gen, true
		seen := make(map[string]bool, len(ts))
		for _, t := range ts {
			seen[t.Cgroup] = true
			st := e.targets[t.Cgroup]
			if st == nil {
				st = &targetState{}
				e.targets[t.Cgroup] = st
			}
			st.t = t
		}
		for cg := range e.targets {
			if !seen[cg] {
				e.disarm(cg)
				delete(e.targets, cg)
			}
		}
		e.m.setLivePods(ts)
		e.rearm = true
	}
	if !e.rearm {
		return
	}
	e.rearm = false
	// In the snapshot's order, as far as maxTriggers allows.
	n := e.armed()
	for _, t := range e.synced {
		st := e.targets[t.Cgroup]
		if st.trig == nil && !st.gone && e.cgTriggers && n < maxTriggers {
			e.arm(st)
			if st.trig != nil {
				n++
			}
		}
	}
	if e.nodeTrig != nil {
		n++
	}
	e.m.Triggers.Set(float64(n))
}

func (e *Engine) armed() int {
	n := 0
	for _, st := range e.targets {
		if st.trig != nil {
			n++
		}
	}
	return n
}

func (e *Engine) arm(st *targetState) {
	t, err := e.cfg.Cgroups.OpenPressureTrigger(st.t.Cgroup, e.spec)
	switch {
	case err == nil:
		st.trig, st.trigFile = t, t.File()
	case errors.Is(err, fs.ErrNotExist):
		st.gone = true
	default:
		// Not this cgroup's fault (no PSI, no permission): stop trying,
		// and say so in the start-up line.
		e.cgTriggers = false
		e.log.Info("per-container PSI triggers unavailable: container pressure is read with usage", "cgroup", st.t.Cgroup, "err", err)
	}
}

// step reads what changed and moves the episodes on. fired are the target
// cgroups whose trigger woke the loop.
func (e *Engine) step(fired map[string]bool) {
	now := e.now()
	e.forget(now)
	e.syncTargets()
	e.sampleNode(now)
	e.nodeH = judge(&e.node, e.pol.Node, e.spec.Window, e.spec.Full, e.pol.Pressure.Share())
	e.pending = e.nodeH.pending
	e.sayCalmShort()
	every := fullEvery
	if e.nodeH.level != levelOK {
		every = fullEvery / 2
	}
	all := now.Sub(e.lastFull) >= every
	if all {
		e.lastFull = now
		// The live pods again, though unchanged: SetLive also sweeps the
		// series of gone pods nobody scraped, when that is due.
		e.m.setLivePods(e.synced)
	}
	for cg, st := range e.targets {
		if all || fired[cg] || e.hot(st) || e.inEpisode(cg) {
			e.sampleTarget(now, st)
		}
	}
	e.advance(now)
	e.startNode(now)
	e.startContainers(now)
	for _, ep := range e.episodes {
		e.firedOf(ep)
	}
}

// sayCalmShort says, once each time the node comes down from
// releaseAvailable, that it is below minAvailable but not in danger: tasks
// are not stalled over the bar and memory is not falling fast (a slow
// tmpfs fill on a busy host, a node that settles just under the line).
// Nothing is done then, by design, and nothing else would say so: no
// episode starts, so no refusal is logged. It is said on a whole window of
// history only, as pressure is judged; not while a node episode is on
// (that one says what it does); and not again until the node is back
// above releaseAvailable, so a node hovering at the line, in and out of
// danger, says it once.
func (e *Engine) sayCalmShort() {
	h := e.nodeH
	if h.level == levelOK {
		e.calmShort = false
		return
	}
	if e.calmShort || h.level != levelLow || h.pending || h.avail >= h.lv.Min ||
		!e.node.spans(e.spec.Window) || e.episodes[nodeKey] != nil {
		return
	}
	stall := "unknown (no PSI)"
	if h.stall >= 0 {
		stall = fmt.Sprintf("%.1f%%", 100*h.stall)
	}
	e.log.Info("node memory below minAvailable without pressure: not acting (no kill is made on a shortage the node is coping with; the kernel reclaims, and podwarden acts if tasks stall or memory falls fast)",
		"available", oom.HumanBytes(h.avail), "min_available", oom.HumanBytes(h.lv.Min),
		"stall", stall, "stall_bar", fmt.Sprintf("%.0f%%", 100*h.bar),
		"fell_last_window", oom.HumanBytes(h.drop), "fast_drop", oom.HumanBytes(uint64(fastDropBar(h.total))))
	e.calmShort = true
}

// hot targets are sampled every tick: near their limit, where a fast hog
// crosses minAvailable between two full samples.
func (e *Engine) hot(st *targetState) bool {
	s, ok := st.h.last()
	return ok && s.total > 0 && s.avail < 2*e.pol.Container.Resolve(s.total).Release
}

// acting reports whether an episode is between its first signal and its
// victim's exit.
func (e *Engine) acting() bool {
	for _, ep := range e.episodes {
		if ep.ended.IsZero() {
			return true
		}
	}
	return false
}

func (e *Engine) inEpisode(cg string) bool {
	for _, ep := range e.episodes {
		if ep.cg == cg {
			return true
		}
	}
	return false
}

func (e *Engine) keep() time.Duration {
	return max(e.pol.GrowthWindow, 2*e.spec.Window) + fullEvery
}

func (e *Engine) sampleNode(now time.Time) {
	mi, err := e.cfg.Proc.Meminfo()
	if err != nil {
		e.log.Warn("reading meminfo", "err", err)
		return
	}
	e.swapTotal = mi.SwapTotal
	s := sample{at: now, total: mi.MemTotal, avail: mi.MemAvailable}
	if p, err := cgroup.ReadPressure(e.psiFile); err == nil {
		s.some, s.full, s.psi = p.Some.Total, p.Full.Total, true
	}
	e.node.add(s, e.keep())
}

// sampleTarget reads a container's usage, limit and pressure. A cgroup
// that is gone marks the target gone: it is never chosen, even while the
// agent's snapshot still lists it.
func (e *Engine) sampleTarget(now time.Time, st *targetState) {
	cg := st.t.Cgroup
	fsys := e.cfg.Cgroups
	// memory.stat before memory.current: page cache reclaimed between the
	// two reads then makes committed (usage minus reclaimable cache) come
	// out low, never high. The other order counted cache reclaimed in
	// between as growth; on a thrashing guest a container "grew" 133 MiB
	// in 7.5 s that no process had (two-kernels, refused as
	// not_process_memory while its hog stalled in reclaim).
	ms, msErr := fsys.MemStat(cg)
	usage, err := fsys.Usage(cg)
	if errors.Is(err, fs.ErrNotExist) {
		st.gone = true
		e.disarm(cg)
		return
	}
	if err != nil {
		return
	}
	if st.gone {
		st.gone, e.rearm = false, true // back: its trigger may be armed again
	}
	s := sample{at: now, usage: usage, committed: usage}
	if msErr == nil {
		s.committed = ms.Committed(usage)
		s.shmem = ms.Shmem
	}
	if l, err := fsys.Limit(cg); err == nil && !l.Unlimited {
		s.total = l.Bytes
		if s.committed < l.Bytes {
			s.avail = l.Bytes - s.committed
		}
	}
	if p, err := fsys.Pressure(cg); err == nil {
		s.some, s.full, s.psi = p.Some.Total, p.Full.Total, true
	}
	st.h.add(s, e.keep())
	// Its processes: always while memory is short or the target is hot,
	// else when its memory moved, else often enough to keep a baseline
	// within the recent window. A calm node with flat targets pays half
	// (BenchmarkProcSnapshot: ~40 µs a process on a busy 2-core host).
	moved := s.committed > st.procCommitted+procMoved || st.procCommitted > s.committed+procMoved
	if e.nodeH.level != levelOK || e.hot(st) || e.inEpisode(cg) || moved || now.Sub(st.procAt) >= e.recent()/2 {
		st.procs.add(now, e.readProcs(cg, procfs.FieldStat|procfs.FieldStatus), e.recent())
		st.procAt, st.procCommitted = now, s.committed
	}
}

// procMoved is how far a target's committed memory moves before its
// processes are read again on a calm node.
const procMoved = 4 << 20

// recent is the window the culprit is looked for in: what grew lately,
// not what filled up when it started (a pod that loaded its data 25 s ago
// and has held it flat since did not cause pressure now). A quarter of the
// growth window, at least 5 s: two or three full samples.
func (e *Engine) recent() time.Duration {
	return max(e.pol.GrowthWindow/4, 5*time.Second)
}
