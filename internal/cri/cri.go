package cri

import (
	"time"
)

// Pod is a pod sandbox as the runtime reports it. Name, Namespace and UID
// come from the sandbox metadata that kubelet set, so they match the API
// server's pod.
type Pod struct {
	ID          string // sandbox id, the runtime's handle
	UID         string // Kubernetes pod UID
	Name        string
	Namespace   string
	Labels      map[string]string
	Annotations map[string]string
	Ready       bool // sandbox state is SANDBOX_READY
	CreatedAt   time.Time
}

// Container states as strings, so logs and tables print them unchanged.
const (
	StateCreated = "created"
	StateRunning = "running"
	StateExited  = "exited"
	StateUnknown = "unknown"
)

// Container is a container as the runtime reports it. Its cgroup is not
// here: the agent finds it from the processes' /proc/PID/cgroup, which is
// right for every cgroup driver and runtime.
type Container struct {
	ID          string
	PodID       string // sandbox id of the owning pod
	Name        string
	State       string // one of the State constants
	Labels      map[string]string
	Annotations map[string]string
	CreatedAt   time.Time
}

// EventType says what happened to a container.
type EventType int

// Event types, in the order of CRI's ContainerEventType so a conversion is a
// plain cast.
const (
	EventCreated EventType = iota
	EventStarted
	EventStopped
	EventDeleted
)

func (t EventType) String() string {
	switch t {
	case EventCreated:
		return "created"
	case EventStarted:
		return "started"
	case EventStopped:
		return "stopped"
	case EventDeleted:
		return "deleted"
	}
	return "unknown"
}

// Event is one container lifecycle event from the runtime's stream.
type Event struct {
	Type        EventType
	ContainerID string
	PodID       string // sandbox id; empty if the runtime sent no sandbox status
	PodUID      string
	Time        time.Time
}
