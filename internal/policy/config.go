package policy

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
)

// Mode is what the agent does with memory.oom.group on a target container.
type Mode string

const (
	// ModeSingle writes 0 on the container cgroup and every cgroup below
	// it that has 1, so the kernel kills one process, not the container.
	ModeSingle Mode = "single"
	// ModeGroup writes 1: the whole container dies on OOM (kubelet's
	// default since 1.28 on cgroup v2).
	ModeGroup Mode = "group"
	// ModeLeave never writes memory.oom.group.
	ModeLeave Mode = "leave"
)

// ParseMode checks a mode given as text (config, flag or annotation).
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeSingle, ModeGroup, ModeLeave:
		return m, nil
	}
	return "", fmt.Errorf("%q is not one of single, group, leave", s)
}

// Annotations a pod may carry to override the config for itself. podwarden
// uses one domain, podwarden.dev, for everything it reads or writes on
// objects (these, the image webhook's podwarden.dev/image-patch, the image
// label dev.podwarden.patches).
const (
	AnnotationOOMKill     = "podwarden.dev/oom-kill"      // single | group | leave
	AnnotationOOMScoreAdj = "podwarden.dev/oom-score-adj" // integer, annotationMinAdj..1000
)

// LegacyAnnotationDomain is the domain the pod annotations had before
// podwarden settled on podwarden.dev: still read, so pods annotated then
// keep their settings. The new name wins when a pod has both.
const LegacyAnnotationDomain = "podwarden.io"

// Selector chooses target pods. A pod is a target when its namespace is not
// excluded, is in Namespaces (if any are listed), has every label in Labels
// and none in ExcludeLabels. A label value "*" means "any value".
type Selector struct {
	Labels            map[string]string
	Namespaces        []string // empty: all namespaces
	ExcludeNamespaces []string // default: kube-system
	ExcludeLabels     map[string]string
}

// ProtectedRule lowers the adj of host (non-pod) processes. Every field
// that is set must match; at least one must be set.
type ProtectedRule struct {
	Comm   string // /proc/PID/comm; compared on the kernel's first 15 bytes
	Exe    string // glob on /proc/PID/exe, e.g. "/usr/sbin/sshd" or "**/sshd"
	Cgroup string // glob on the cgroup path, e.g. "/system.slice/sshd.service"
	Adj    int    // default -900
}

// Config is podwarden's policy. Build it with Default, Load or Parse; after
// changing fields (flags override the file), call Validate.
type Config struct {
	Selector       Selector
	OOMGroup       Mode // default single
	PodOOMScoreAdj int  // default 900
	// AnnotationMinAdj is the lowest adj a pod may ask for with its
	// annotation (default 0). Without a floor any pod author could write
	// -1000 and outlive sshd and kubelet, the failure podwarden exists to
	// stop.
	AnnotationMinAdj int
	Protected        []ProtectedRule
	Interval         time.Duration // drift re-check period, default 10s
	// CgroupSelector narrows the targets to containers whose cgroup path
	// matches this glob ("" all). Without a CRI runtime it narrows the
	// kubelet container cgroups the agent finds by itself, and outside
	// pods it alone chooses (plain Docker, systemd services, tests).
	CgroupSelector string
	// Preempt acts before the kernel OOM killer (off by default).
	Preempt Preempt
}

// DefaultProtectedAdj is the adj of protected host processes unless a rule
// says otherwise: below every pod (kubelet gives pods -997 at the lowest only
// when Guaranteed, and podwarden raises targets to 900) but above kubelet
// and the runtime (-999), which must outlive everything.
const DefaultProtectedAdj = -900

// Bounds of Interval. MinInterval keeps a typo like "10ms" from turning the
// drift re-check into a busy loop on a node that is already short of
// memory; MaxInterval keeps drift repairs within a day, and every duration
// the agent derives from the interval (its liveness bound is three of
// them) far from overflowing.
const (
	MinInterval = 100 * time.Millisecond
	MaxInterval = 24 * time.Hour
)

// Default returns the built-in policy. Each call returns fresh slices and
// maps, so callers may change them.
func Default() Config {
	return Config{
		Selector: Selector{
			Labels:            map[string]string{},
			ExcludeNamespaces: []string{"kube-system"},
			ExcludeLabels:     map[string]string{},
		},
		OOMGroup:         ModeSingle,
		PodOOMScoreAdj:   900,
		AnnotationMinAdj: 0,
		// The daemons a node needs to stay reachable, keep time and log,
		// on the notes' EKS nodes and on GPU nodes; docs/policy.md says why
		// each one is here. kubelet and the runtime are left as kubelet
		// sets them (-999): below every entry here already.
		Protected: []ProtectedRule{
			{Comm: "sshd", Adj: DefaultProtectedAdj},
			{Comm: "systemd-networkd", Adj: DefaultProtectedAdj},
			{Comm: "systemd-resolved", Adj: DefaultProtectedAdj},
			{Comm: "systemd-journald", Adj: DefaultProtectedAdj},
			{Comm: "chronyd", Adj: DefaultProtectedAdj},
			{Comm: "systemd-timesyncd", Adj: DefaultProtectedAdj},
			{Comm: "amazon-ssm-agent", Adj: DefaultProtectedAdj},
			{Comm: "ssm-agent-worker", Adj: DefaultProtectedAdj},
			{Comm: "polkitd", Adj: DefaultProtectedAdj},
			{Comm: "nvidia-persistenced", Adj: DefaultProtectedAdj},
			{Comm: "nv-fabricmanager", Adj: DefaultProtectedAdj},
			{Comm: "nv-hostengine", Adj: DefaultProtectedAdj},
		},
		Interval: 10 * time.Second,
		Preempt:  DefaultPreempt(),
	}
}

// Validate checks a Config built or changed in code (flags applied over a
// file). Parse runs the same checks and adds line numbers.
func (c Config) Validate() error {
	var errs []error
	add := func(field string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
		}
	}
	add("selector", checkSelector(c.Selector, func(field string, err error) { add("selector."+field, err) }))
	if _, err := ParseMode(string(c.OOMGroup)); err != nil {
		add("oomGroup", err)
	}
	add("podOOMScoreAdj", checkAdj(c.PodOOMScoreAdj))
	add("annotationMinAdj", checkAdj(c.AnnotationMinAdj))
	for i, r := range c.Protected {
		f := fmt.Sprintf("protected[%d]", i)
		add(f, checkRule(r))
		add(f+".comm", checkComm(r.Comm))
		add(f+".exe", checkExe(r.Exe))
		add(f+".cgroup", checkGlob(r.Cgroup))
		add(f+".adj", checkAdj(r.Adj))
	}
	add("interval", CheckInterval(c.Interval))
	add("cgroupSelector", checkCgroupSelector(c.CgroupSelector))
	c.Preempt.validate(func(f string, err error) { add("preempt."+f, err) })
	return errors.Join(errs...)
}

// checkSelector reports per-field problems through add and returns only
// the cross-field one (a namespace both included and excluded).
func checkSelector(s Selector, add func(field string, err error)) error {
	for _, k := range sortedKeys(s.Labels) {
		add("labels", checkLabel(k, s.Labels[k]))
	}
	for _, k := range sortedKeys(s.ExcludeLabels) {
		add("excludeLabels", checkLabel(k, s.ExcludeLabels[k]))
	}
	for _, ns := range s.Namespaces {
		add("namespaces", checkNamespace(ns))
	}
	for _, ns := range s.ExcludeNamespaces {
		add("excludeNamespaces", checkNamespace(ns))
	}
	for _, ns := range s.ExcludeNamespaces {
		if slices.Contains(s.Namespaces, ns) {
			return fmt.Errorf("namespace %q is both in namespaces and excludeNamespaces", ns)
		}
	}
	return nil
}

func checkAdj(v int) error {
	if v < -1000 || v > 1000 {
		return fmt.Errorf("%d is outside -1000..1000", v)
	}
	return nil
}

// CheckInterval reports an interval outside MinInterval..MaxInterval.
func CheckInterval(d time.Duration) error {
	if d < MinInterval {
		return fmt.Errorf("%v is shorter than the minimum %v", d, MinInterval)
	}
	if d > MaxInterval {
		return fmt.Errorf("%v is longer than the maximum %v", d, MaxInterval)
	}
	return nil
}

func checkRule(r ProtectedRule) error {
	if r.Comm == "" && r.Exe == "" && r.Cgroup == "" {
		return errors.New("needs at least one of comm, exe, cgroup")
	}
	return nil
}

// checkComm refuses control characters (NUL, newline, escape...) and
// Unicode bidirectional formatting characters in a comm rule. The kernel
// never lets a process rename itself to a NUL, so a rule with one matches
// nothing in silence; the others make a rule read as another name in the
// file, a review or the agent's log ("ssh\u202ed" shows as "sshd" spelt
// backwards), the Trojan Source trick (CVE-2021-42574). The message
// quotes the rule in ASCII so it cannot do the same.
func checkComm(s string) error {
	for i, r := range s {
		var what string
		switch {
		case r == 0:
			what = "NUL"
		case unicode.IsControl(r):
			what = "a control character"
		case r == 0x061C, r == 0x200E, r == 0x200F, r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069:
			what = "a bidirectional formatting character"
		default:
			continue
		}
		return fmt.Errorf("%+q has %s (%U) at byte %d; a comm rule is a plain process name", s, what, r, i)
	}
	return nil
}

// checkExe insists on an absolute glob: "sshd" would silently match
// nothing, since /proc/PID/exe is always absolute.
func checkExe(p string) error {
	if p == "" {
		return nil
	}
	if !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "**") {
		return fmt.Errorf("%q must be an absolute path glob (for any directory use \"**/%s\")", p, p)
	}
	return checkGlob(p)
}

var (
	// Kubernetes label syntax (apimachinery validation.IsQualifiedName and
	// IsValidLabelValue), restated to keep this package dependency-free.
	labelNameRE   = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$`)
	labelPrefixRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	namespaceRE   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
)

func checkLabel(key, value string) error {
	name := key
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		prefix := key[:i]
		name = key[i+1:]
		if len(prefix) > 253 || !labelPrefixRE.MatchString(prefix) {
			return fmt.Errorf("label key %q: prefix must be a DNS subdomain", key)
		}
	}
	if !labelNameRE.MatchString(name) {
		return fmt.Errorf("label key %q is not a valid label name", key)
	}
	if value != "*" && value != "" && !labelNameRE.MatchString(value) {
		return fmt.Errorf("label %s: value %q is not a valid label value (or \"*\" for any)", key, value)
	}
	return nil
}

func checkNamespace(ns string) error {
	if !namespaceRE.MatchString(ns) {
		return fmt.Errorf("%q is not a valid namespace name", ns)
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// CheckRuntimeless reports the selector keys that cannot apply without a
// container runtime (the agent's --no-cri mode): pod labels and
// namespaces are known only to the runtime, and a cgroup path carries
// neither, so such a policy would select nothing, silently. ownNamespace
// (the agent's own, which the agent adds to excludeNamespaces) and the
// default exclusion of kube-system are not errors: they are not what the
// operator wrote, and the agent skips its own pod by its cgroup.
func (c Config) CheckRuntimeless(ownNamespace string) error {
	var errs []error
	add := func(key string, set bool) {
		if set {
			errs = append(errs, fmt.Errorf("selector.%s: does not apply without a container runtime (--no-cri): pods' labels and namespaces are known only to the runtime; remove it, or run with the runtime", key))
		}
	}
	s := c.Selector
	add("namespaces", len(s.Namespaces) > 0)
	add("labels", len(s.Labels) > 0)
	add("excludeLabels", len(s.ExcludeLabels) > 0)
	excl := slices.DeleteFunc(slices.Clone(s.ExcludeNamespaces), func(ns string) bool { return ns == ownNamespace })
	add("excludeNamespaces", len(excl) > 0 && !slices.Equal(excl, Default().Selector.ExcludeNamespaces))
	return errors.Join(errs...)
}
