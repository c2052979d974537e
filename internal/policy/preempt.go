package policy

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Preempt is the policy of internal/preempt: act on one process of the
// target container that causes memory pressure before the kernel's OOM
// killer has to. Off by default.
type Preempt struct {
	Enabled bool
	// DryRun chooses and reports a victim but sends no signal.
	DryRun bool
	// Pressure is both the PSI trigger armed on /proc/pressure/memory and
	// every target's memory.pressure, and the bar for "under pressure":
	// tasks stalled at least Stall within the last Window.
	Pressure PSITrigger
	// Node thresholds, of MemTotal available (MemAvailable).
	Node Thresholds
	// Container thresholds, of a container's (or its pod's) memory.max
	// not yet committed (usage minus reclaimable page cache).
	Container Thresholds
	// Ladder is what is sent to the victim, in order, each step waiting
	// its Grace for the process to exit before the next. The last is
	// SIGKILL.
	Ladder []Step
	// Mrelease calls process_mrelease after SIGKILL, so the victim's
	// memory is freed at once rather than when it has finished exiting.
	Mrelease bool
	// Cooldown is the least time between two kills on a node (and in one
	// container): what stops a cascade while memory is still coming back.
	Cooldown time.Duration
	// GrowthWindow is how far back "the container whose usage grew" looks.
	GrowthWindow time.Duration
	// KeepInit spares each container's init (pid 1 in its namespace).
	KeepInit bool
	// Keep are glob patterns (path.Match) of processes never chosen: they
	// are matched against the process name (comm), the base name of its
	// argv[0] and, for interpreters, of argv[1].
	Keep []string
	// MessageFile, when set, is a path inside the container where the
	// reason for a kill is written (through /proc/PID/root of a process
	// that lives on), for a notebook extension or a shell prompt to show.
	MessageFile string
}

// PSITrigger is a PSI trigger as the policy spells it: "some 100ms 1s".
type PSITrigger struct {
	Full   bool
	Stall  time.Duration
	Window time.Duration
}

// Thresholds bound an episode, as memory available. Each takes a
// percentage of the total (0..100), a size in bytes, or both, and then the
// lower wins, as earlyoom's -m/-M do: a percentage alone that suits a
// 4 GiB node acts with 51 GiB free on a 512 GiB one. A zero field is not
// given; a threshold with neither is off (only criticalAvailable may be).
type Thresholds struct {
	// MinAvailable: below it, and under pressure, the engine acts.
	MinAvailable      float64
	MinAvailableBytes uint64
	// CriticalAvailable: below it the engine acts without waiting for
	// pressure and skips the ladder's grace periods.
	CriticalAvailable      float64
	CriticalAvailableBytes uint64
	// ReleaseAvailable: an episode ends once this much is available again
	// (hysteresis: it must be above MinAvailable).
	ReleaseAvailable      float64
	ReleaseAvailableBytes uint64
}

// Level is one threshold: a percentage of the total, a size, or both.
type Level struct {
	Pct   float64
	Bytes uint64
}

// Of is the threshold in bytes for a domain of total bytes: the lower of
// the percentage and the size given; 0 when neither is.
func (l Level) Of(total uint64) uint64 {
	var out uint64
	given := false
	if l.Pct > 0 {
		out, given = uint64(l.Pct/100*float64(total)), true
	}
	if l.Bytes > 0 && (!given || l.Bytes < out) {
		out = l.Bytes
	}
	return out
}

// IsZero reports whether neither part is given.
func (l Level) IsZero() bool { return l.Pct == 0 && l.Bytes == 0 }

// String is the policy spelling, the inverse of ParseLevel.
func (l Level) String() string {
	var parts []string
	if l.Pct > 0 || l.Bytes == 0 {
		parts = append(parts, strconv.FormatFloat(l.Pct, 'f', -1, 64)+"%")
	}
	if l.Bytes > 0 {
		parts = append(parts, FormatSize(l.Bytes))
	}
	return strings.Join(parts, " ")
}

// Min, Critical and Release are the three thresholds as Levels.
func (th Thresholds) Min() Level      { return Level{th.MinAvailable, th.MinAvailableBytes} }
func (th Thresholds) Critical() Level { return Level{th.CriticalAvailable, th.CriticalAvailableBytes} }
func (th Thresholds) Release() Level  { return Level{th.ReleaseAvailable, th.ReleaseAvailableBytes} }

// Step is one rung of the action ladder.
type Step struct {
	Signal string // SIGINT, SIGTERM, SIGKILL, ...
	Grace  time.Duration
}

// Signals a ladder may send. SIGINT interrupts a running Jupyter cell,
// SIGTERM asks for an orderly exit, SIGKILL ends it.
var ladderSignals = []string{"SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGKILL"}

// Annotations a pod may carry to override the preempt policy for itself.
const (
	// AnnotationPreempt: "off" never acts on the pod, "dry-run" only
	// reports what it would do, "on" is the default.
	AnnotationPreempt = "podwarden.dev/preempt"
	// AnnotationPreemptKeep: comma-separated globs added to keep.
	AnnotationPreemptKeep = "podwarden.dev/preempt-keep"
)

// PreemptMode is what the engine may do to one pod.
type PreemptMode string

const (
	PreemptOn     PreemptMode = "on"
	PreemptOff    PreemptMode = "off"
	PreemptDryRun PreemptMode = "dry-run"
)

// PreemptDecision is the per-pod part of Preempt.
type PreemptDecision struct {
	Mode PreemptMode `json:"mode"`
	// Keep is the policy's keep list plus the pod's annotation.
	Keep []string `json:"keep,omitempty"`
}

// DefaultKeep spares the session: the notebook or IDE server, the
// container's ssh daemon and init system. The kernel process doing the
// work (ipykernel, R, python) is what dies.
var DefaultKeep = []string{
	"jupyter-lab", "jupyter-notebook", "jupyter-server", "jupyterhub-singleuser",
	"rsession", "rserver", "sshd", "systemd",
}

// Default thresholds: the percentage binds on small domains, the size on
// big ones (docs/policy.md, "Sizes and shares"). On a 4 GiB node the engine
// acts below 410 MiB available (10%); on a 16 GiB node below 1.6 GiB; from
// 20 GiB up below 2 GiB, which at the few GiB/s a hog allocates is still
// most of a second above the kernel's own reserves (min_free_kbytes is at
// most 256 MiB, and MemAvailable already leaves out the low watermarks).
// Containers: the same shape, against memory.max.
var (
	DefaultNodeThresholds = Thresholds{
		MinAvailable: 10, MinAvailableBytes: 2 << 30,
		CriticalAvailable: 4, CriticalAvailableBytes: 768 << 20,
		ReleaseAvailable: 20, ReleaseAvailableBytes: 4 << 30,
	}
	DefaultContainerThresholds = Thresholds{
		MinAvailable: 5, MinAvailableBytes: 256 << 20,
		CriticalAvailable: 2, CriticalAvailableBytes: 96 << 20,
		ReleaseAvailable: 10, ReleaseAvailableBytes: 512 << 20,
	}
)

// DefaultPreempt is the built-in preempt policy (disabled).
func DefaultPreempt() Preempt {
	return Preempt{
		Pressure:     PSITrigger{Stall: 100 * time.Millisecond, Window: time.Second},
		Node:         DefaultNodeThresholds,
		Container:    DefaultContainerThresholds,
		Ladder:       []Step{{"SIGINT", 2 * time.Second}, {"SIGTERM", 3 * time.Second}, {"SIGKILL", 0}},
		Mrelease:     true,
		Cooldown:     10 * time.Second,
		GrowthWindow: 30 * time.Second,
		KeepInit:     true,
		Keep:         slices.Clone(DefaultKeep),
	}
}

// Bounds of the preempt keys.
const (
	minTriggerWindow = 500 * time.Millisecond // kernel/sched/psi.c WINDOW_MIN_US
	maxTriggerWindow = 10 * time.Second       // WINDOW_MAX_US
	maxGrace         = time.Minute
	maxLadder        = 6
	minCooldown      = time.Second
	maxCooldown      = time.Hour
	minGrowthWindow  = 5 * time.Second
	maxGrowthWindow  = 10 * time.Minute
)

// String is the policy spelling, the inverse of ParsePSITrigger.
func (t PSITrigger) String() string {
	kind := "some"
	if t.Full {
		kind = "full"
	}
	return kind + " " + t.Stall.String() + " " + t.Window.String()
}

// ParsePSITrigger reads "some|full STALL WINDOW", e.g. "some 100ms 1s".
func ParsePSITrigger(s string) (PSITrigger, error) {
	f := strings.Fields(s)
	if len(f) != 3 || f[0] != "some" && f[0] != "full" {
		return PSITrigger{}, fmt.Errorf("%q: want \"some|full STALL WINDOW\", e.g. \"some 100ms 1s\"", s)
	}
	stall, err := time.ParseDuration(f[1])
	if err != nil {
		return PSITrigger{}, fmt.Errorf("%q: stall %q is not a duration like 100ms", s, f[1])
	}
	window, err := time.ParseDuration(f[2])
	if err != nil {
		return PSITrigger{}, fmt.Errorf("%q: window %q is not a duration like 1s", s, f[2])
	}
	t := PSITrigger{Full: f[0] == "full", Stall: stall, Window: window}
	return t, t.check()
}

func (t PSITrigger) check() error {
	if t.Window < minTriggerWindow || t.Window > maxTriggerWindow {
		return fmt.Errorf("window %v is outside %v..%v (the kernel's bounds)", t.Window, minTriggerWindow, maxTriggerWindow)
	}
	if t.Stall <= 0 || t.Stall > t.Window {
		return fmt.Errorf("stall %v must be positive and at most the window %v", t.Stall, t.Window)
	}
	return nil
}

// Share is the stall share that counts as pressure: Stall/Window.
func (t PSITrigger) Share() float64 { return float64(t.Stall) / float64(t.Window) }

// ParsePercent reads "10%" or "10" (percent), "2.5%" too.
func ParsePercent(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "%")), 64)
	if err != nil || v != v || v < 0 || v > 100 {
		return 0, fmt.Errorf("%q is not a percentage like 10%%", s)
	}
	return v, nil
}

// ParseLevel reads a threshold: a percentage ("10%", or "10"), a size
// ("2GiB", "512Mi", "1.5G") or both, separated by a space or a comma
// ("10% 2GiB"), the lower of which applies.
func ParseLevel(s string) (Level, error) {
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' })
	if len(parts) == 0 || len(parts) > 2 {
		return Level{}, fmt.Errorf("%q: want a percentage, a size or both, e.g. 10%%, 2GiB or \"10%% 2GiB\"", s)
	}
	var l Level
	var pct, size bool
	for _, p := range parts {
		if v, err := ParsePercent(p); err == nil {
			if pct {
				return Level{}, fmt.Errorf("%q: two percentages", s)
			}
			l.Pct, pct = v, true
			continue
		}
		b, err := ParseSize(p)
		if err != nil {
			if len(parts) == 1 {
				return Level{}, fmt.Errorf("%q is not a percentage like 10%% or a size like 2GiB", s)
			}
			return Level{}, fmt.Errorf("%q: %q is not a percentage like 10%% or a size like 2GiB", s, p)
		}
		if size {
			return Level{}, fmt.Errorf("%q: two sizes", s)
		}
		l.Bytes, size = b, true
	}
	return l, nil
}

// sizeUnits are the suffixes ParseSize takes: binary (Ki, KiB, ...) as
// Kubernetes quantities and free(1) spell them, decimal (K, KB, ...) as
// SI.
var sizeUnits = map[string]float64{
	"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
	"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
}

// ParseSize reads a size with a unit: "2GiB", "2Gi", "512MiB", "1.5G",
// "100M". A bare number is refused: it is read as a percentage elsewhere,
// and a byte count nobody means is better refused than guessed.
func ParseSize(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i <= 0 {
		return 0, fmt.Errorf("%q is not a size like 2GiB", s)
	}
	unit := strings.TrimSuffix(s[i:], "B")
	mult, ok := sizeUnits[unit]
	v, err := strconv.ParseFloat(s[:i], 64)
	if !ok || err != nil || v <= 0 || v*mult >= 1<<62 {
		return 0, fmt.Errorf("%q is not a size like 2GiB (units Ki, Mi, Gi, Ti or K, M, G, T, with an optional B)", s)
	}
	return uint64(v * mult), nil
}

// FormatSize spells b in the largest binary unit that keeps it whole, or
// to one decimal in GiB/MiB otherwise; ParseSize reads it back.
func FormatSize(b uint64) string {
	for _, u := range []struct {
		name string
		m    uint64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b >= u.m && b%u.m == 0 {
			return strconv.FormatUint(b/u.m, 10) + u.name
		}
	}
	if b >= 1<<20 {
		return strconv.FormatFloat(float64(b)/(1<<20), 'f', -1, 64) + "MiB"
	}
	return strconv.FormatFloat(float64(b)/(1<<10), 'f', -1, 64) + "KiB"
}

func (th Thresholds) check(add func(field string, err error)) {
	pct := func(v, lo, hi float64) error {
		if v != 0 && (v < lo || v > hi) {
			return fmt.Errorf("%g%% is outside %g%%..%g%%", v, lo, hi)
		}
		return nil
	}
	add("minAvailable", pct(th.MinAvailable, 1, 50))
	add("criticalAvailable", pct(th.CriticalAvailable, 0, 50))
	add("releaseAvailable", pct(th.ReleaseAvailable, 1, 90))
	if th.Min().IsZero() {
		add("minAvailable", errors.New("needs a percentage, a size or both"))
	}
	if th.Release().IsZero() {
		add("releaseAvailable", errors.New("needs a percentage, a size or both"))
	}
	// Order, part by part: the parts one level gives and the other does
	// not are ordered at run time (Resolve).
	c, m, r := th.Critical(), th.Min(), th.Release()
	if c.Pct > 0 && m.Pct > 0 && c.Pct >= m.Pct {
		add("criticalAvailable", fmt.Errorf("%g%% must be below minAvailable %g%% (or 0 to turn it off)", c.Pct, m.Pct))
	}
	if c.Bytes > 0 && m.Bytes > 0 && c.Bytes >= m.Bytes {
		add("criticalAvailable", fmt.Errorf("%s must be below minAvailable %s (or 0 to turn it off)", FormatSize(c.Bytes), FormatSize(m.Bytes)))
	}
	const why = ", or one episode ends and the next begins at the same level"
	if r.Pct > 0 && m.Pct > 0 && r.Pct <= m.Pct {
		add("releaseAvailable", fmt.Errorf("%g%% must be above minAvailable %g%%%s", r.Pct, m.Pct, why))
	}
	if r.Bytes > 0 && m.Bytes > 0 && r.Bytes <= m.Bytes {
		add("releaseAvailable", fmt.Errorf("%s must be above minAvailable %s%s", FormatSize(r.Bytes), FormatSize(m.Bytes), why))
	}
}

// Levels are the thresholds of one domain in bytes.
type Levels struct {
	Min, Critical, Release uint64
}

// Resolve applies th to a domain of total bytes. Levels given in
// different parts (a percentage here, a size there) can cross on some
// sizes; they are ordered here: critical at most min, release above it
// (by 1% of the total, at most 256 MiB), so an episode always has room to
// end.
func (th Thresholds) Resolve(total uint64) Levels {
	l := Levels{Min: th.Min().Of(total), Critical: th.Critical().Of(total), Release: th.Release().Of(total)}
	l.Critical = min(l.Critical, l.Min)
	if floor := l.Min + max(min(total/100, 256<<20), 1); l.Release < floor {
		l.Release = floor
	}
	return l
}

func checkLadder(l []Step, add func(field string, err error)) {
	if len(l) == 0 || len(l) > maxLadder {
		add("ladder", fmt.Errorf("has %d steps, want 1..%d ending with SIGKILL", len(l), maxLadder))
		return
	}
	for i, s := range l {
		f := fmt.Sprintf("ladder[%d]", i)
		if s.Signal != "" && !slices.Contains(ladderSignals, s.Signal) {
			add(f+".signal", fmt.Errorf("%q is not one of %s", s.Signal, strings.Join(ladderSignals, ", ")))
		}
		if s.Signal == "SIGKILL" && i != len(l)-1 {
			add(f+".signal", errors.New("SIGKILL ends the ladder: steps after it would never run"))
		}
		if s.Grace < 0 || s.Grace > maxGrace {
			add(f+".grace", fmt.Errorf("%v is outside 0s..%v", s.Grace, maxGrace))
		}
	}
	if last := l[len(l)-1]; last.Signal != "SIGKILL" && last.Signal != "" {
		add(fmt.Sprintf("ladder[%d].signal", len(l)-1), fmt.Errorf("the last step is %s, want SIGKILL: a process that ignores it would keep the node thrashing", last.Signal))
	}
}

func checkKeep(p string) error {
	if p == "" {
		return errors.New("empty pattern")
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("%q: %w", p, err)
	}
	return nil
}

func checkMessageFile(p string) error {
	if p == "" {
		return nil
	}
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p || p == "/" {
		return fmt.Errorf("%q must be a clean absolute path inside the container, e.g. /tmp/podwarden-oom.txt", p)
	}
	for _, dir := range []string{"/proc", "/sys", "/dev"} {
		if p == dir || strings.HasPrefix(p, dir+"/") {
			return fmt.Errorf("%q is in %s, which is not a file system a message can be left in", p, dir)
		}
	}
	return nil
}

func checkDuration(d, lo, hi time.Duration) error {
	if d < lo || d > hi {
		return fmt.Errorf("%v is outside %v..%v", d, lo, hi)
	}
	return nil
}

// validate reports every problem through add, with the key below preempt.
func (p Preempt) validate(add func(field string, err error)) {
	add("pressure", p.Pressure.check())
	p.Node.check(func(f string, err error) { add("node."+f, err) })
	p.Container.check(func(f string, err error) { add("container."+f, err) })
	checkLadder(p.Ladder, add)
	add("cooldown", checkDuration(p.Cooldown, minCooldown, maxCooldown))
	add("growthWindow", checkDuration(p.GrowthWindow, minGrowthWindow, maxGrowthWindow))
	for i, k := range p.Keep {
		add(fmt.Sprintf("keep[%d]", i), checkKeep(k))
	}
	add("messageFile", checkMessageFile(p.MessageFile))
}

// decidePreempt applies a pod's annotations to the preempt policy. Bad
// values are ignored (the policy stands) and said in reasons.
func (p Preempt) decide(annotations map[string]string, reasons *[]string) PreemptDecision {
	d := PreemptDecision{Mode: PreemptOn, Keep: p.Keep}
	if key, v, ok := annotation(annotations, AnnotationPreempt); ok {
		switch m := PreemptMode(strings.TrimSpace(v)); m {
		case PreemptOn, PreemptOff, PreemptDryRun:
			d.Mode = m
			*reasons = append(*reasons, fmt.Sprintf("%s=%s", key, m))
		default:
			*reasons = append(*reasons, fmt.Sprintf("ignored %s: %q is not one of on, off, dry-run", key, v))
		}
	}
	if key, v, ok := annotation(annotations, AnnotationPreemptKeep); ok {
		var extra []string
		for _, k := range strings.Split(v, ",") {
			k = strings.TrimSpace(k)
			if k == "" {
				continue
			}
			if err := checkKeep(k); err != nil {
				*reasons = append(*reasons, fmt.Sprintf("ignored %s: %v", key, err))
				extra = nil
				break
			}
			extra = append(extra, k)
		}
		if len(extra) > 0 {
			d.Keep = slices.Concat(p.Keep, extra)
			*reasons = append(*reasons, fmt.Sprintf("%s=%s", key, strings.Join(extra, ",")))
		}
	}
	return d
}
