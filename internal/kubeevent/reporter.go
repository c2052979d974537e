package kubeevent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"
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

// OOM kinds, as in the podwarden_oom_kills_total metric.
const (
	KindNode   = "node"   // the node ran out of memory
	KindCgroup = "cgroup" // a memory limit (the container's or an ancestor's) was hit
)

// ErrPodMismatch means the pod at namespace/name is not the one the OOM
// happened in (it was replaced by a pod with the same name, a StatefulSet
// restart for example). No Event is attached to the wrong pod.
var ErrPodMismatch = errors.New("pod UID does not match")

// ErrPodGone means the pod no longer exists.
var ErrPodGone = errors.New("pod not found")

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
	// Kind is KindNode or KindCgroup.
	Kind string
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

// Reporter turns OOM kills into Events. Reporting never blocks on
// writing them: Events are queued and written by one goroutine, which
// correlates them first (correlate.go). Only the pod's UID check, a GET
// cached for a few minutes, happens in the caller.
type Reporter struct {
	c    *client
	node string
	log  *slog.Logger
	now  func() time.Time
	// retryBase is the first retry's delay; it doubles.
	retryBase time.Duration

	queue  chan *event
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	verified map[podKey]verifiedPod
}

type podKey struct{ namespace, name string }

type verifiedPod struct {
	uid        string
	containers map[string]string // container name -> field path in the pod spec
	at         time.Time
}

const (
	verifyTTL   = 5 * time.Minute
	maxVerified = 4096
	queueLen    = 256
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
		queue: make(chan *event, queueLen), cancel: cancel, done: make(chan struct{}),
		verified: map[podKey]verifiedPod{},
	}
	go r.run(ctx)
	return r, nil
}

// Close stops the writer. Events still queued are lost.
func (r *Reporter) Close() {
	r.cancel()
	<-r.done
}

// PodOOM records a Warning Event on the pod the OOM happened in. The pod
// is read from the API server and must have o.PodUID: an Event is never
// attached by name alone. It returns ErrPodMismatch or ErrPodGone
// (wrapped) when the pod is not there any more.
func (r *Reporter) PodOOM(ctx context.Context, o OOM) error {
	if o.PodUID == "" || o.Namespace == "" || o.PodName == "" {
		return fmt.Errorf("pod OOM event: need namespace, name and UID, got %q/%q uid %q", o.Namespace, o.PodName, o.PodUID)
	}
	ref, err := r.podRef(ctx, o)
	if err != nil {
		return err
	}
	r.enqueue(ref, "Warning", ReasonOOMKilledProcess, PodMessage(o))
	return nil
}

// NodeOOM records a Warning Event on this node for host processes a node
// OOM killed. Like the kubelet, it refers to the Node with its name as
// UID, which is what "kubectl describe node" looks for.
func (r *Reporter) NodeOOM(ctx context.Context, o OOM) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.enqueue(objectRef{Kind: "Node", APIVersion: "v1", Name: r.node, UID: r.node}, "Warning", ReasonHostOOMKill, NodeMessage(o))
	return nil
}

func (r *Reporter) enqueue(ref objectRef, typ, reason, msg string) {
	now := r.now()
	ns := ref.Namespace
	if ns == "" {
		ns = "default" // Events on cluster-scoped objects live here, as client-go puts them
	}
	e := &event{
		APIVersion: "v1", Kind: "Event",
		// client-go's naming: unique per object and time.
		Metadata:       eventMeta{Name: fmt.Sprintf("%s.%x", ref.Name, now.UnixNano()), Namespace: ns},
		InvolvedObject: ref, Reason: reason, Message: msg,
		Source:         source{Component: Component, Host: r.node},
		FirstTimestamp: stamp(now), LastTimestamp: stamp(now), Count: 1, Type: typ,
		ReportingController: Component, ReportingInstance: r.node,
	}
	select {
	case r.queue <- e:
	default:
		r.log.Warn("event queue full, dropping Event", "reason", reason, "object", ref.Name)
	}
}

func (r *Reporter) run(ctx context.Context) {
	defer close(r.done)
	corr := newCorrelator()
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-r.queue:
			out, repeat, ok := corr.correlate(e, r.now())
			if !ok {
				r.log.Debug("event rate limit reached, dropping Event", "reason", e.Reason, "object", e.InvolvedObject.Name)
				continue
			}
			if err := r.write(ctx, out, repeat); err != nil {
				if repeat {
					corr.forget(out)
				}
				if ctx.Err() == nil {
					r.log.Warn("write Event", "reason", out.Reason, "object", out.InvolvedObject.Name, "err", err)
				}
			}
		}
	}
}

// write creates e or, for a repeat, patches its count; a repeat whose
// Event the server no longer has (expired after the Event TTL, or
// deleted) is created again.
func (r *Reporter) write(ctx context.Context, e *event, repeat bool) error {
	var err error
	for try := range writeTries {
		if try > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(r.retryBase << (try - 1)):
			}
		}
		if repeat {
			err = r.c.patchEvent(ctx, e)
			if isStatus(err, http.StatusNotFound) {
				repeat = false
				err = r.c.createEvent(ctx, e)
			}
		} else {
			err = r.c.createEvent(ctx, e)
		}
		if isStatus(err, http.StatusConflict) {
			// Created by an earlier try whose reply was lost.
			return nil
		}
		if err == nil || !retryable(err) {
			return err
		}
	}
	return err
}

// podRef returns the Event's reference to the pod after checking the UID,
// from a short-lived cache so a storm of kills in one pod costs one GET.
func (r *Reporter) podRef(ctx context.Context, o OOM) (objectRef, error) {
	key := podKey{o.Namespace, o.PodName}
	r.mu.Lock()
	v, ok := r.verified[key]
	r.mu.Unlock()
	if !ok || v.uid != o.PodUID || r.now().Sub(v.at) > verifyTTL {
		p, err := r.c.getPod(ctx, o.Namespace, o.PodName)
		switch {
		case isStatus(err, http.StatusNotFound):
			return objectRef{}, fmt.Errorf("pod %s/%s (uid %s): %w", o.Namespace, o.PodName, o.PodUID, ErrPodGone)
		case err != nil:
			return objectRef{}, fmt.Errorf("reading pod %s/%s: %w", o.Namespace, o.PodName, err)
		case p.Metadata.UID != o.PodUID:
			return objectRef{}, fmt.Errorf("pod %s/%s has uid %s, the OOM was in uid %s: %w", o.Namespace, o.PodName, p.Metadata.UID, o.PodUID, ErrPodMismatch)
		}
		v = verifiedPod{uid: p.Metadata.UID, containers: fieldPaths(p), at: r.now()}
		r.mu.Lock()
		if len(r.verified) >= maxVerified {
			clear(r.verified) // rare; a re-read per pod is cheap
		}
		r.verified[key] = v
		r.mu.Unlock()
	}
	return objectRef{
		Kind: "Pod", APIVersion: "v1", Namespace: o.Namespace, Name: o.PodName, UID: v.uid,
		FieldPath: v.containers[o.Container],
	}, nil
}

func fieldPaths(p *pod) map[string]string {
	f := map[string]string{}
	for _, c := range p.Spec.Containers {
		f[c.Name] = "spec.containers{" + c.Name + "}"
	}
	for _, c := range p.Spec.InitContainers {
		f[c.Name] = "spec.initContainers{" + c.Name + "}"
	}
	for _, c := range p.Spec.EphemeralContainers {
		f[c.Name] = "spec.ephemeralContainers{" + c.Name + "}"
	}
	return f
}
