package agent

import (
	"context"
	"errors"
	"time"

	"podwarden/internal/kubeevent"
)

// Reporter posts OOM kills to Kubernetes (kubeevent.Reporter); nil disables
// it. Its calls may block on the API server: the agent makes them from the
// poster's goroutine, never from the loop.
type Reporter interface {
	PodOOM(ctx context.Context, o kubeevent.OOM) error
	NodeOOM(ctx context.Context, o kubeevent.OOM) error
}

// Bounds of the poster: queueLen reports wait at most (more are dropped
// and counted), each call may take postTimeout, failures back off from
// minPostBackoff to maxPostBackoff (reports arriving meanwhile are
// dropped), and a pod the API server said is gone or replaced is not
// looked up again for goneTTL.
const (
	postQueueLen   = 64
	postTimeout    = 5 * time.Second
	minPostBackoff = time.Second
	maxPostBackoff = time.Minute
	goneTTL        = 5 * time.Minute
	maxGone        = 1024
)

// poster posts Events beside the loop: the loop hands it a report and
// goes on; when the queue is full the report is dropped and counted.
type poster struct {
	r     Reporter
	q     chan postJob
	dep   *dependency
	m     *Metrics
	log   interface{ Warn(string, ...any) }
	gone  map[podRef]time.Time
	until time.Time // backing off until then
	delay time.Duration
}

type postJob struct {
	o    kubeevent.OOM
	node bool
}

func (a *Agent) startPoster(ctx context.Context) *poster {
	p := &poster{r: a.cfg.Reporter, q: make(chan postJob, postQueueLen), m: a.m, log: a.log,
		dep: a.health.dependency("kube-apiserver", a.m), gone: map[podRef]time.Time{}}
	go p.run(ctx)
	return p
}

// post queues an Event; it never blocks.
func (p *poster) post(o kubeevent.OOM, node bool) {
	select {
	case p.q <- postJob{o, node}:
	default:
		p.m.ReportsDropped.WithLabelValues("queue_full").Inc()
	}
}

// podRef is a pod's identity, for the negative cache.
type podRef struct{ uid, namespace, name string }

func goneKey(o kubeevent.OOM) podRef { return podRef{o.PodUID, o.Namespace, o.PodName} }

func (p *poster) run(ctx context.Context) {
	for {
		var j postJob
		select {
		case <-ctx.Done():
			return
		case j = <-p.q:
		}
		now := time.Now()
		if now.Before(p.until) {
			p.m.ReportsDropped.WithLabelValues("backoff").Inc()
			continue
		}
		if !j.node {
			if at, ok := p.gone[goneKey(j.o)]; ok && now.Sub(at) < goneTTL {
				p.m.ReportsDropped.WithLabelValues("pod_gone").Inc()
				continue
			}
		}
		cctx, cancel := context.WithTimeout(ctx, postTimeout)
		var err error
		if j.node {
			p.dep.begin("post node Event")
			err = p.r.NodeOOM(cctx, j.o)
		} else {
			p.dep.begin("read pod " + j.o.Namespace + "/" + j.o.PodName + " for its Event")
			err = p.r.PodOOM(cctx, j.o)
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil:
			p.dep.end(nil)
			p.delay = 0
		case errors.Is(err, kubeevent.ErrPodGone), errors.Is(err, kubeevent.ErrPodMismatch):
			// The API server answered: it is healthy, the pod is not there.
			p.dep.end(nil)
			if len(p.gone) >= maxGone {
				clear(p.gone)
			}
			p.gone[goneKey(j.o)] = now
			p.m.ReportsDropped.WithLabelValues("pod_gone").Inc()
		default:
			p.dep.end(err)
			p.delay = min(max(2*p.delay, minPostBackoff), maxPostBackoff)
			p.until = time.Now().Add(p.delay)
			p.m.Errors.WithLabelValues("event").Inc()
			p.m.ReportsDropped.WithLabelValues("failed").Inc()
			p.log.Warn("post Event failed: backing off", "pod", j.o.Namespace+"/"+j.o.PodName, "err", err, "retry_in", p.delay)
		}
	}
}
