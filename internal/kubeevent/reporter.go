package kubeevent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"podwarden/internal/oomreport"
)

// Event reasons. They are part of the interface: users filter on them
// (kubectl get events --field-selector reason=OOMKilledProcess).
const (
	// ReasonOOMKilledProcess is a Warning on a Pod: the kernel's OOM
	// killer took a process of one of its containers.
	ReasonOOMKilledProcess = "OOMKilledProcess"
	// ReasonHostOOMKill is a Warning on a Node: a node OOM killed host
	// processes (not in any pod).
	ReasonHostOOMKill = "OOMKilledHostProcess"
)

// Component is the Events' source component (reportingController).
const Component = "podwarden"

// OOM describes one OOM kill as the agent attributed it. The namespace and
// name come from the runtime's pod sandbox metadata, PodUID from the
// kubelet's cgroup path; the reporter checks that they agree.
type OOM struct {
	PodUID, Namespace, PodName, Container string
	// Comm and PID of the killed process; both empty when the kill was
	// counted in memory.events without the kernel log, which alone names
	// the process. Kills then says how many processes were killed.
	Comm  string
	PID   int
	Kills int
	// Kind is which OOM it was.
	Kind oomreport.Kind
	// AnonRSSBytes is the victim's anonymous memory when it was killed.
	AnonRSSBytes uint64
	// GroupKill: memory.oom.group was set and the whole container went.
	GroupKill bool
	// Bystanders is how many other processes a group kill took with it.
	Bystanders int
	// HostVictims names the host processes a node OOM killed, e.g.
	// "sshd (pid 812)", for NodeOOM.
	HostVictims []string
}

// Reporter is the agent's one outbox of Events: the agent's OOM kills and
// internal/preempt's actions and refusals all go through it. Its methods
// never wait for the API server: they check what they are given, queue
// the Event and return. One goroutine (outbox.go) then checks the pod's
// UID, correlates (correlate.go) and writes. Every report that does not
// become an Event is told to the Observer with its DropReason, so
// podwarden_reports_dropped_total counts all of them in one place.
type Reporter struct {
	c    *client
	node string
	log  *slog.Logger
	now  func() time.Time
	// retryBase is the first retry's delay; it doubles.
	retryBase time.Duration

	queue chan job
	// timeout bounds each call to the API server (callTimeout).
	timeout time.Duration
	obs     atomic.Pointer[Observer]
	// pending counts the queued jobs of each object and reason: at most
	// eventBurst wait, so a storm in one pod cannot fill the queue that
	// the other pods' and the node's Events share (beyond its burst the
	// correlator would drop them anyway).
	mu      sync.Mutex
	pending map[string]int
	cancel  context.CancelFunc
	done    chan struct{}

	// Owned by the outbox goroutine.
	verified map[podKey]verifiedPod
	gone     map[podID]time.Time
	until    time.Time // backing off until then
	delay    time.Duration
}

// Observer is told what the outbox does: its calls to the API server (for
// the agent's health) and every report it drops (for the metric). It is
// called from the outbox's goroutine, except Dropped(DropQueueFull) and
// Dropped(DropInvalid), which come from the caller's.
type Observer interface {
	// Calling says a call to the API server starts, and what it is.
	Calling(what string)
	// Called says it ended; err is nil when the server answered as
	// expected (a pod that is gone is an answer, not a failure).
	Called(err error)
	// Dropped counts a report that will not become an Event.
	Dropped(reason DropReason)
}

// DropReason says why a report did not become an Event: the reason label
// of podwarden_reports_dropped_total.
type DropReason string

const (
	// DropQueueFull: the outbox was full (the API server is slow, or a
	// storm of reports); the caller was not made to wait.
	DropQueueFull DropReason = "queue_full"
	// DropBackoff: a call failed lately and the outbox waits before the
	// next one, so a dead API server costs one timeout per backoff.
	DropBackoff DropReason = "backoff"
	// DropRateLimited: the Event's object spent its burst (correlate.go).
	DropRateLimited DropReason = "rate_limited"
	// DropPodGone: the pod is gone, or replaced by one of the same name.
	DropPodGone DropReason = "pod_gone"
	// DropAPIError: the API server refused the call, or did not answer
	// in time after retries.
	DropAPIError DropReason = "api_error"
	// DropInvalid: the report lacks what its Event needs (a pod's UID).
	DropInvalid DropReason = "invalid"
)

// DropReasons are all values of DropReason, in the order docs list them.
var DropReasons = []DropReason{DropQueueFull, DropBackoff, DropRateLimited, DropPodGone, DropAPIError, DropInvalid}

func (d DropReason) String() string { return string(d) }

type podKey struct{ namespace, name string }

// podID is a pod's identity, for the cache of pods that are gone.
type podID struct{ uid, namespace, name string }

type verifiedPod struct {
	uid        string
	containers map[string]string // container name -> field path in the pod spec
	at         time.Time
}

// Bounds of the outbox: queueLen reports wait at most; each call to the
// API server may take callTimeout; failures back off from minBackoff to
// maxBackoff; a pod's UID check is cached for verifyTTL and a pod the
// server said is gone or replaced is not looked up again for goneTTL.
const (
	queueLen    = 256
	callTimeout = 5 * time.Second
	minBackoff  = time.Second
	maxBackoff  = time.Minute
	verifyTTL   = 5 * time.Minute
	goneTTL     = 5 * time.Minute
	maxVerified = 4096
	maxGone     = 1024
	// writeTries bounds retries of one Event on transport and 5xx errors
	// (client-go tries 12 times, 10 s apart; an OOM Event minutes late is
	// of little use, and the agent's log has the kill anyway).
	writeTries = 4
)

// NewReporter starts a reporter that writes Events as nodeName until ctx
// ends or Close is called. Errors writing Events are logged to log.
func NewReporter(ctx context.Context, cfg Config, nodeName string, log *slog.Logger) (*Reporter, error) {
	if nodeName == "" {
		return nil, errors.New("kube events: no node name")
	}
	c, err := newClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("kube events: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &Reporter{
		c: c, node: nodeName, log: log.With("component", "events"), now: time.Now, retryBase: time.Second,
		queue: make(chan job, queueLen), timeout: callTimeout, pending: map[string]int{}, cancel: cancel, done: make(chan struct{}),
		verified: map[podKey]verifiedPod{}, gone: map[podID]time.Time{},
	}
	go r.run(ctx)
	return r, nil
}

// Observe sets who is told about calls and drops; set it before the first
// report (the agent does in agent.New). nil stops telling.
func (r *Reporter) Observe(o Observer) {
	if o == nil {
		r.obs.Store(nil)
		return
	}
	r.obs.Store(&o)
}

// Close stops the outbox. Reports still queued are lost.
func (r *Reporter) Close() {
	r.cancel()
	<-r.done
}

// PodOOM queues a Warning Event on the pod the OOM happened in. The pod
// is read from the API server and must have o.PodUID: an Event is never
// attached by name alone. It never waits; the error is for a report
// without the pod's identity or a ctx that is done.
func (r *Reporter) PodOOM(ctx context.Context, o OOM) error {
	if o.PodUID == "" || o.Namespace == "" || o.PodName == "" {
		r.dropped(DropInvalid)
		return fmt.Errorf("pod OOM event: need namespace, name and UID, got %q/%q uid %q", o.Namespace, o.PodName, o.PodUID)
	}
	return r.enqueue(ctx, job{pod: &podID{o.PodUID, o.Namespace, o.PodName}, container: o.Container,
		typ: "Warning", reason: ReasonOOMKilledProcess, msg: PodMessage(o)})
}

// NodeOOM queues a Warning Event on this node for host processes a node
// OOM killed. Like the kubelet, it refers to the Node with its name as
// UID, which is what "kubectl describe node" looks for.
func (r *Reporter) NodeOOM(ctx context.Context, o OOM) error {
	return r.enqueue(ctx, job{typ: "Warning", reason: ReasonHostOOMKill, msg: NodeMessage(o)})
}

// job is one Event waiting in the outbox: for a pod (whose UID is checked
// before it is written) or, pod nil, for this node.
type job struct {
	pod              *podID
	container        string
	typ, reason, msg string
	at               time.Time
}

// key names j's object and reason, for pending.
func (j job) key() string {
	if j.pod == nil {
		return "\x00" + j.reason
	}
	return j.pod.namespace + "/" + j.pod.name + "\x00" + j.reason
}

// enqueue hands j to the outbox without ever blocking.
func (r *Reporter) enqueue(ctx context.Context, j job) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	j.at = r.now()
	key := j.key()
	r.mu.Lock()
	drop := DropReason("")
	if r.pending[key] >= eventBurst {
		drop = DropRateLimited
	} else {
		select {
		case r.queue <- j:
			r.pending[key]++
		default:
			drop = DropQueueFull
		}
	}
	r.mu.Unlock()
	if drop != "" {
		r.dropped(drop)
	}
	return nil
}

// dequeued is told that the outbox took j off the queue.
func (r *Reporter) dequeued(j job) {
	key := j.key()
	r.mu.Lock()
	if r.pending[key]--; r.pending[key] <= 0 {
		delete(r.pending, key)
	}
	r.mu.Unlock()
}

func (r *Reporter) observer() Observer {
	if o := r.obs.Load(); o != nil {
		return *o
	}
	return nil
}

func (r *Reporter) dropped(reason DropReason) {
	if o := r.observer(); o != nil {
		o.Dropped(reason)
	}
}
