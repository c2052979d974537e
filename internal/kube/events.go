package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"podwarden/internal/oom"
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
	// Comm and PID of the killed process.
	Comm string
	PID  int
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

// Reporter turns OOM kills into Kubernetes Events. It uses client-go's
// EventRecorder, whose correlator merges repeats: identical Events become
// one Event with a count, more than ten similar ones on an object within
// ten minutes become one "(combined from similar events)" Event, and each
// object may write at most burst Events, then one per refill period. An
// OOM storm therefore costs the API server a handful of writes, not one
// per kill. Reporting never blocks on the API server: Events are queued
// and written in the background.
type Reporter struct {
	client      typedcorev1.CoreV1Interface
	node        string
	log         *slog.Logger
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder

	mu       sync.Mutex
	verified map[podKey]verifiedPod // namespace/name -> UID checked recently
	now      func() time.Time
}

type podKey struct{ namespace, name string }

type verifiedPod struct {
	uid        types.UID
	containers containerFields
	at         time.Time
}

// containerFields maps a container name to its field path in the pod spec
// (spec.containers{x}), which kubectl shows as the Event's sub-object.
type containerFields map[string]string

// Limits of the correlator. Bursts are per object (pod or node).
const (
	eventBurst      = 10
	eventRefill     = 1.0 / 60 // one more Event per object per minute after a burst
	aggregateAfter  = 5        // similar Events on one object before they are combined
	aggregateWindow = 10 * 60  // seconds
	verifyTTL       = 5 * time.Minute
	maxVerified     = 4096
)

// NewReporter starts an Event broadcaster writing through client with
// nodeName as the source host. It takes the core/v1 client only, not a
// whole clientset: kubernetes.NewForConfig links every API group's client
// into the binary, typedcorev1.NewForConfig(cfg) just this one. It stops when ctx ends or Close is called.
// Errors writing Events (a missing RBAC permission, an unreachable API
// server) are logged to log, as client-go retries or drops them.
func NewReporter(ctx context.Context, client typedcorev1.CoreV1Interface, nodeName string, log *slog.Logger) *Reporter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// client-go logs through klog; give it the agent's logger via the
	// context instead of klog's global one.
	ctx = klog.NewContext(ctx, logr.FromSlogHandler(log.With("component", "events").Handler()))
	b := record.NewBroadcaster(record.WithContext(ctx), record.WithCorrelatorOptions(record.CorrelatorOptions{
		BurstSize:            eventBurst,
		QPS:                  eventRefill,
		MaxEvents:            aggregateAfter,
		MaxIntervalInSeconds: aggregateWindow,
	}))
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.Events("")})
	return &Reporter{
		client:      client,
		node:        nodeName,
		log:         log,
		broadcaster: b,
		recorder:    b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: Component, Host: nodeName}),
		verified:    map[podKey]verifiedPod{},
		now:         time.Now,
	}
}

// Close stops the broadcaster. Events still queued may be lost.
func (r *Reporter) Close() { r.broadcaster.Shutdown() }

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
	r.recorder.Event(ref, corev1.EventTypeWarning, ReasonOOMKilledProcess, PodMessage(o))
	return nil
}

// NodeOOM records a Warning Event on this node for host processes a node
// OOM killed. Like the kubelet, it refers to the Node with its name as
// UID, which is what "kubectl describe node" looks for.
func (r *Reporter) NodeOOM(ctx context.Context, o OOM) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ref := &corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: r.node, UID: types.UID(r.node)}
	r.recorder.Event(ref, corev1.EventTypeWarning, ReasonHostOOMKill, NodeMessage(o))
	return nil
}

// podRef returns the Event's reference to the pod after checking the UID,
// from a short-lived cache so a storm of kills in one pod costs one GET.
func (r *Reporter) podRef(ctx context.Context, o OOM) (*corev1.ObjectReference, error) {
	key := podKey{o.Namespace, o.PodName}
	r.mu.Lock()
	v, ok := r.verified[key]
	r.mu.Unlock()
	if !ok || v.uid != types.UID(o.PodUID) || r.now().Sub(v.at) > verifyTTL {
		pod, err := r.client.Pods(o.Namespace).Get(ctx, o.PodName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return nil, fmt.Errorf("pod %s/%s (uid %s): %w", o.Namespace, o.PodName, o.PodUID, ErrPodGone)
		case err != nil:
			return nil, fmt.Errorf("reading pod %s/%s: %w", o.Namespace, o.PodName, err)
		case pod.UID != types.UID(o.PodUID):
			return nil, fmt.Errorf("pod %s/%s has uid %s, the OOM was in uid %s: %w", o.Namespace, o.PodName, pod.UID, o.PodUID, ErrPodMismatch)
		}
		v = verifiedPod{uid: pod.UID, containers: fieldPaths(pod), at: r.now()}
		r.mu.Lock()
		if len(r.verified) >= maxVerified {
			clear(r.verified) // rare; a re-read per pod is cheap
		}
		r.verified[key] = v
		r.mu.Unlock()
	}
	return &corev1.ObjectReference{
		Kind: "Pod", APIVersion: "v1", Namespace: o.Namespace, Name: o.PodName, UID: v.uid,
		FieldPath: v.containers[o.Container],
	}, nil
}

func fieldPaths(pod *corev1.Pod) containerFields {
	f := containerFields{}
	for _, c := range pod.Spec.Containers {
		f[c.Name] = fmt.Sprintf("spec.containers{%s}", c.Name)
	}
	for _, c := range pod.Spec.InitContainers {
		f[c.Name] = fmt.Sprintf("spec.initContainers{%s}", c.Name)
	}
	for _, c := range pod.Spec.EphemeralContainers {
		f[c.Name] = fmt.Sprintf("spec.ephemeralContainers{%s}", c.Name)
	}
	return f
}

// PodMessage is the text of a pod's OOM Event, e.g.
//
//	OOMKilled process python (pid 1234) in container notebook: node out of memory, 7.1 GiB anon; other processes kept running
func PodMessage(o OOM) string {
	var b strings.Builder
	fmt.Fprintf(&b, "OOMKilled process %s", victim(o.Comm, o.PID))
	if o.Container != "" {
		fmt.Fprintf(&b, " in container %s", o.Container)
	}
	b.WriteString(": ")
	b.WriteString(cause(o.Kind))
	if o.AnonRSSBytes > 0 {
		fmt.Fprintf(&b, ", %s anon", oom.HumanBytes(o.AnonRSSBytes))
	}
	switch {
	case o.GroupKill && o.Bystanders > 0:
		fmt.Fprintf(&b, "; the whole container was killed (memory.oom.group=1) with %d other process%s", o.Bystanders, plural(o.Bystanders, "es"))
	case o.GroupKill:
		b.WriteString("; the whole container was killed (memory.oom.group=1)")
	default:
		b.WriteString("; other processes kept running")
	}
	return b.String()
}

// NodeMessage is the text of a node's OOM Event.
func NodeMessage(o OOM) string {
	victims := slices.Clone(o.HostVictims)
	if len(victims) == 0 && (o.Comm != "" || o.PID != 0) {
		victims = []string{victim(o.Comm, o.PID)}
	}
	if len(victims) == 0 {
		return "node out of memory: the OOM killer killed host processes"
	}
	msg := fmt.Sprintf("node out of memory: the OOM killer killed host process%s %s", plural(len(victims), "es"), strings.Join(victims, ", "))
	if o.AnonRSSBytes > 0 && len(o.HostVictims) == 0 {
		msg += fmt.Sprintf(" (%s anon)", oom.HumanBytes(o.AnonRSSBytes))
	}
	return msg
}

func victim(comm string, pid int) string {
	if comm == "" {
		comm = "?"
	}
	if pid == 0 {
		return comm
	}
	return fmt.Sprintf("%s (pid %d)", comm, pid)
}

func cause(kind string) string {
	switch kind {
	case KindNode:
		return "node out of memory"
	case KindCgroup:
		return "memory limit reached"
	}
	return "out of memory"
}

func plural(n int, suffix string) string {
	if n == 1 {
		return ""
	}
	return suffix
}
