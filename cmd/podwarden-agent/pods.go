package main

import (
	"context"
	"os"
	"time"

	"podwarden/internal/cri"
	"podwarden/internal/podname"
)

// runtimePodsTimeout bounds naming pods through the runtime in ps, victims
// and events: a hung runtime costs the command this, then the kubelet's
// log directories name the pods.
const runtimePodsTimeout = 2 * time.Second

// runtimePods names pods from the container runtime's pod sandboxes, for
// the node commands of this binary (`kubectl exec` into the agent's pod,
// where /var/log/pods is not mounted but the runtime socket is). The
// endpoint is crictl's $CONTAINER_RUNTIME_ENDPOINT, else the usual
// sockets.
type runtimePods struct{}

var _ podname.Lister = runtimePods{}

func (runtimePods) Pods(ctx context.Context) ([]podname.Pod, error) {
	ctx, cancel := context.WithTimeout(ctx, runtimePodsTimeout)
	defer cancel()
	c, err := cri.Dial(ctx, os.Getenv("CONTAINER_RUNTIME_ENDPOINT"), cri.WithTimeout(runtimePodsTimeout))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	sandboxes, err := c.ListPods(ctx, nil)
	if err != nil {
		return nil, err
	}
	pods := make([]podname.Pod, 0, len(sandboxes))
	for _, s := range sandboxes {
		pods = append(pods, podname.Pod{Namespace: s.Namespace, Name: s.Name, UID: s.UID})
	}
	return pods, nil
}
