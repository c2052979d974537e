package kubeevent

import (
	"context"
	"fmt"
	"strings"

	"podwarden/internal/oom"
)

// Reasons of the Events internal/preempt posts on a pod.
const (
	// ReasonPressureKill is a Warning: podwarden ended one process of the
	// pod under memory pressure, before the kernel's OOM killer had to.
	ReasonPressureKill = "MemoryPressureKill"
	// ReasonPressureKillDryRun is Normal: what podwarden would have done
	// (preempt.dryRun or the pod's podwarden.dev/preempt: dry-run).
	ReasonPressureKillDryRun = "MemoryPressureWouldKill"
	// ReasonPressureNothingKillable is a Warning: the pod caused the
	// pressure but every process in it is kept (keep patterns, its init),
	// so podwarden left it to the kernel.
	ReasonPressureNothingKillable = "MemoryPressureNothingKillable"
	// ReasonPressureNotActed is a Warning: memory was short in the pod's
	// scope but podwarden ended nothing, because no kill could help (what
	// grew was shmem, kernel memory, or too little of the shortage).
	ReasonPressureNotActed = "MemoryPressureNotActed"
)

// Scope is what ran short of memory: the node or one container. Its
// String is the metrics' scope label.
type Scope string

// Pressure scopes.
const (
	ScopeNode      Scope = "node"      // the node's MemAvailable
	ScopeContainer Scope = "container" // the container's memory.max
)

func (s Scope) String() string { return string(s) }

// Outcome is what early action did about one episode, as its Event says:
// a kill (OutcomeKilled) or one of the others. Its String is also the
// episodes metric's outcome label where the two meet (dry-run).
type Outcome string

// Outcomes of a PressureKill.
const (
	OutcomeKilled          Outcome = ""
	OutcomeDryRun          Outcome = "dry-run"
	OutcomeNothingKillable Outcome = "nothing-killable"
	OutcomeNotActed        Outcome = "not-acted"
)

func (o Outcome) String() string {
	if o == OutcomeKilled {
		return "killed"
	}
	return string(o)
}

// PressureKill is one action of internal/preempt, as the user is told.
type PressureKill struct {
	PodUID, Namespace, PodName, Container string
	Comm                                  string
	PID                                   int
	// RSSBytes is the victim's resident memory (anon + file + shmem).
	RSSBytes uint64
	// Signals are what was sent, in order; the last ended the process.
	// In a dry run, what would be sent first.
	Signals []string
	Scope   Scope
	// Available and Total describe the scope's memory: MemAvailable and
	// MemTotal for the node, uncommitted memory and memory.max otherwise.
	Available, Total uint64
	// StallPct is the share of the last window in which tasks stalled on
	// memory (PSI), in percent; negative when PSI is unavailable.
	StallPct float64
	// Why names why this pod or container and this process were chosen.
	Why     string
	Outcome Outcome
}

// maxMessage is what the API server's events.k8s.io validation allows in a
// note; core/v1 Events are kept to the same so both views show all of it.
const maxMessage = 1024

// PressureMessage is the text of a pressure Event (and of the message file
// left in the container), e.g.
//
//	podwarden ended process python3 (pid 812) in container notebook with SIGINT, SIGTERM:
//	412 MiB resident; node memory low: 5% available (35 MiB of 708 MiB), tasks
//	stalled on memory 38% of the time; why: ...
func PressureMessage(k PressureKill) string {
	var b strings.Builder
	proc := victim(k.Comm, k.PID)
	where := ""
	if k.Container != "" {
		where = " in container " + k.Container
	}
	switch k.Outcome {
	case OutcomeDryRun:
		fmt.Fprintf(&b, "podwarden would end process %s%s (dry run, nothing sent)", proc, where)
	case OutcomeNothingKillable:
		fmt.Fprintf(&b, "podwarden found nothing it may end%s: every process is kept", where)
	case OutcomeNotActed:
		fmt.Fprintf(&b, "podwarden ended nothing%s: no kill could give the memory back", where)
	default:
		fmt.Fprintf(&b, "podwarden ended process %s%s", proc, where)
		if len(k.Signals) > 0 {
			fmt.Fprintf(&b, " with %s", strings.Join(k.Signals, ", "))
		}
		b.WriteString(" before the kernel's OOM killer had to")
	}
	b.WriteString(": ")
	if k.RSSBytes > 0 && k.Outcome != OutcomeNothingKillable && k.Outcome != OutcomeNotActed {
		fmt.Fprintf(&b, "%s resident; ", oom.HumanBytes(k.RSSBytes))
	}
	fmt.Fprintf(&b, "%s memory low: ", scopeName(k.Scope))
	if k.Total > 0 {
		fmt.Fprintf(&b, "%d%% available (%s of %s)", k.Available*100/k.Total, oom.HumanBytes(k.Available), oom.HumanBytes(k.Total))
	}
	if k.StallPct >= 0 {
		fmt.Fprintf(&b, ", tasks stalled on memory %.0f%% of the time", k.StallPct)
	}
	if k.Why != "" {
		b.WriteString("; why: ")
		b.WriteString(k.Why)
	}
	msg := b.String()
	if len(msg) > maxMessage {
		msg = msg[:maxMessage-3] + "..."
	}
	return msg
}

func scopeName(s Scope) string {
	if s == ScopeContainer {
		return "container"
	}
	return "node"
}

// PodPressureKill queues what internal/preempt did (or would do) on the
// pod; the outbox checks the pod's UID first, as for PodOOM. It never
// waits; the error is for a report without the pod's identity or a ctx
// that is done.
func (r *Reporter) PodPressureKill(ctx context.Context, k PressureKill) error {
	if k.PodUID == "" || k.Namespace == "" || k.PodName == "" {
		r.dropped(DropInvalid)
		return fmt.Errorf("pod pressure event: need namespace, name and UID, got %q/%q uid %q", k.Namespace, k.PodName, k.PodUID)
	}
	typ, reason := pressureReason(k.Outcome)
	return r.enqueue(ctx, job{pod: &podID{k.PodUID, k.Namespace, k.PodName}, container: k.Container,
		typ: typ, reason: reason, msg: PressureMessage(k)})
}

// NodePressure queues an Event on this node for what internal/preempt did
// at node scope without a pod to tell: a refusal (OutcomeNotActed), whose
// why says what kept it from acting, so "kubectl describe node" shows why
// nothing was ended while memory was short. It never waits.
func (r *Reporter) NodePressure(ctx context.Context, k PressureKill) error {
	typ, reason := pressureReason(k.Outcome)
	return r.enqueue(ctx, job{typ: typ, reason: reason, msg: PressureMessage(k)})
}

func pressureReason(o Outcome) (typ, reason string) {
	switch o {
	case OutcomeDryRun:
		return "Normal", ReasonPressureKillDryRun
	case OutcomeNothingKillable:
		return "Warning", ReasonPressureNothingKillable
	case OutcomeNotActed:
		return "Warning", ReasonPressureNotActed
	}
	return "Warning", ReasonPressureKill
}
