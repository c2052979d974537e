package agent

import (
	"context"
	"time"

	"podwarden/internal/cri"
)

// Runtime is what the agent asks a container runtime; cri.Client is one.
type Runtime interface {
	// ListPods lists pod sandboxes whose labels include every pair of
	// labelSelector.
	ListPods(ctx context.Context, labelSelector map[string]string) ([]cri.Pod, error)
	// ListContainers lists the containers of one sandbox, or of all when
	// podID is "".
	ListContainers(ctx context.Context, podID string) ([]cri.Container, error)
	// Events follows the runtime's container events; the channel closes
	// when the stream ends.
	Events(ctx context.Context) (<-chan cri.Event, error)
}

var _ Runtime = (*cri.Client)(nil)

// Bounds of the runtime lister: a hung runtime costs one call of at most
// listTimeout at a time, answers come at most every listGap, and failures
// back off from listGap to maxListBackoff.
const (
	listTimeout    = 10 * time.Second
	listGap        = 250 * time.Millisecond
	maxListBackoff = 30 * time.Second
)

// lister asks the runtime for the targeted pods beside the loop. Requests
// are coalesced (one call in flight, at most one more queued, however many
// cgroups or runtime events asked) and rate-limited; the loop takes the
// latest answer when it comes and never waits for one.
type lister struct {
	a    *Agent
	kick chan struct{}
	out  chan map[string]*podInfo
	dep  *dependency
}

func (a *Agent) startLister(ctx context.Context) *lister {
	l := &lister{a: a, kick: make(chan struct{}, 1), out: make(chan map[string]*podInfo, 1),
		dep: a.health.dependency("container-runtime", a.m)}
	go l.run(ctx)
	l.request()
	return l
}

// request asks for a fresh answer; it never blocks.
func (l *lister) request() {
	select {
	case l.kick <- struct{}{}:
	default: // one is queued already
	}
}

func (l *lister) run(ctx context.Context) {
	var last time.Time
	backoff := listGap
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.kick:
		}
		if wait := time.Until(last.Add(backoff)); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		last = time.Now()
		cctx, cancel := context.WithTimeout(ctx, listTimeout)
		l.dep.begin("list pods and containers")
		pods, err := l.a.runtimePods(cctx)
		cancel()
		l.dep.end(err)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			l.a.countError("discover", err)
			l.a.log.Warn("runtime list failed: protecting the targets already known", "err", err, "retry_in", backoff)
			backoff = min(backoff*2, maxListBackoff)
			l.request() // try again after the backoff
			continue
		}
		backoff = listGap
		// Replace an answer the loop has not taken yet.
		select {
		case <-l.out:
		default:
		}
		l.out <- pods
	}
}
