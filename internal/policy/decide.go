package policy

import (
	"fmt"
	"strconv"
	"strings"
)

// Target is what the agent knows about a pod when it decides.
type Target struct {
	PodUID      string
	Namespace   string
	Name        string
	Labels      map[string]string
	Annotations map[string]string
}

// Decision is what the agent should do to a pod's containers. For a
// non-target OOMGroup is ModeLeave and AdjSet is false: nothing is written.
// Reason is for people: the dry-run table and logs show it.
type Decision struct {
	Target   bool `json:"target"`
	OOMGroup Mode `json:"oom_group"`
	Adj      int  `json:"adj"`
	AdjSet   bool `json:"adj_set"`
	// Preempt is what internal/preempt may do to the pod.
	Preempt PreemptDecision `json:"preempt"`
	Reason  string          `json:"reason"`
}

// Decide applies the selector and then the pod's podwarden.dev annotations
// (or their podwarden.io names, see LegacyAnnotationDomain).
// A bad annotation is ignored (the config value stands) and Reason says
// why, because failing the whole pod would leave it unprotected.
func (c Config) Decide(t Target) Decision {
	if why, ok := c.Selector.selects(t); !ok {
		return Decision{OOMGroup: ModeLeave, Reason: why}
	}
	d := Decision{Target: true, OOMGroup: c.OOMGroup, Adj: c.PodOOMScoreAdj, AdjSet: true}
	reasons := []string{"selected"}
	if key, v, ok := annotation(t.Annotations, AnnotationOOMKill); ok {
		if m, err := ParseMode(strings.TrimSpace(v)); err != nil {
			reasons = append(reasons, fmt.Sprintf("ignored %s: %v", key, err))
		} else {
			d.OOMGroup = m
			reasons = append(reasons, fmt.Sprintf("%s=%s", key, m))
		}
	}
	if key, v, ok := annotation(t.Annotations, AnnotationOOMScoreAdj); ok {
		adj, err := strconv.Atoi(strings.TrimSpace(v))
		switch {
		case err != nil:
			reasons = append(reasons, fmt.Sprintf("ignored %s: %q is not an integer", key, v))
		case adj < c.AnnotationMinAdj || adj > 1000:
			reasons = append(reasons, fmt.Sprintf("ignored %s: %d is outside %d..1000 (annotationMinAdj)", key, adj, c.AnnotationMinAdj))
		default:
			d.Adj = adj
			reasons = append(reasons, fmt.Sprintf("%s=%d", key, adj))
		}
	}
	d.Preempt = c.Preempt.decide(t.Annotations, &reasons)
	d.Reason = strings.Join(reasons, "; ")
	return d
}

// annotation reads the annotation name, or its LegacyAnnotationDomain
// spelling when the pod has only that, and says which key it read.
func annotation(a map[string]string, name string) (key, value string, ok bool) {
	if v, ok := a[name]; ok {
		return name, v, true
	}
	_, rest, _ := strings.Cut(name, "/")
	legacy := LegacyAnnotationDomain + "/" + rest
	if v, ok := a[legacy]; ok {
		return legacy, v, true
	}
	return "", "", false
}

// selects returns why a pod is not selected, checking in the order an
// operator reads the config: namespaces, then labels.
func (s Selector) selects(t Target) (string, bool) {
	for _, ns := range s.ExcludeNamespaces {
		if ns == t.Namespace {
			return fmt.Sprintf("namespace %s is excluded", t.Namespace), false
		}
	}
	if len(s.Namespaces) > 0 {
		found := false
		for _, ns := range s.Namespaces {
			found = found || ns == t.Namespace
		}
		if !found {
			return fmt.Sprintf("namespace %s is not in selector.namespaces", t.Namespace), false
		}
	}
	for _, k := range sortedKeys(s.Labels) {
		want := s.Labels[k]
		got, ok := t.Labels[k]
		switch {
		case !ok:
			return fmt.Sprintf("label %s is missing (selector.labels)", k), false
		case want != "*" && got != want:
			return fmt.Sprintf("label %s=%s, selector.labels wants %s", k, got, want), false
		}
	}
	for _, k := range sortedKeys(s.ExcludeLabels) {
		want := s.ExcludeLabels[k]
		if got, ok := t.Labels[k]; ok && (want == "*" || got == want) {
			return fmt.Sprintf("label %s=%s is excluded (selector.excludeLabels)", k, got), false
		}
	}
	return "", true
}

// commLen is TASK_COMM_LEN-1: the kernel keeps 15 bytes of a process name,
// so "systemd-networkd" shows as "systemd-network" in /proc/PID/comm.
const commLen = 15

// ProtectHost returns the adj for a host (non-pod) process, from the first
// protected rule that matches, and ok=false when none does. comm is
// /proc/PID/comm, exe the target of /proc/PID/exe ("" if unreadable, as for
// kernel threads), cgroup its cgroup path. A process in a kubelet pod
// cgroup is never protected, whatever the rules say: a pod whose process
// happens to be called sshd must not outlive the host's sshd.
func (c Config) ProtectHost(comm, exe, cgroup string) (adj int, ok bool) {
	if inPodCgroup(cgroup) {
		return 0, false
	}
	comm = strings.TrimSuffix(comm, "\n")
	// After a package upgrade the running binary is unlinked and the link
	// reads "/usr/sbin/sshd (deleted)"; it is still sshd.
	exe = strings.TrimSuffix(exe, " (deleted)")
	for _, r := range c.Protected {
		if r.Comm != "" && truncComm(r.Comm) != truncComm(comm) {
			continue
		}
		if r.Exe != "" && (exe == "" || !MatchGlob(r.Exe, exe)) {
			continue
		}
		if r.Cgroup != "" && (cgroup == "" || !MatchGlob(r.Cgroup, cgroup)) {
			continue
		}
		if r.Comm == "" && r.Exe == "" && r.Cgroup == "" {
			continue // an empty rule would match everything; Validate rejects it
		}
		return r.Adj, true
	}
	return 0, false
}

// HostComms returns the process names (as the kernel keeps them) that can
// match a protected rule, so a caller can skip every other process without
// reading its exe or cgroup. ok is false when a rule has no comm and any
// process may match.
func (c Config) HostComms() (comms map[string]bool, ok bool) {
	comms = make(map[string]bool, len(c.Protected))
	for _, r := range c.Protected {
		if r.Comm == "" {
			return nil, false
		}
		comms[truncComm(r.Comm)] = true
	}
	return comms, true
}

func truncComm(s string) string {
	if len(s) > commLen {
		return s[:commLen]
	}
	return s
}

// inPodCgroup recognises both kubelet cgroup drivers' roots ("kubepods" for
// cgroupfs, "kubepods.slice" for systemd) anywhere in the path, as nested
// setups (kind, a node inside a container) put them below other cgroups.
func inPodCgroup(cgroup string) bool {
	for _, seg := range segments(cgroup) {
		if seg == "kubepods" || seg == "kubepods.slice" {
			return true
		}
	}
	return false
}
