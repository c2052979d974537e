package agent

import (
	"context"

	"podwarden/internal/kubeevent"
)

// Reporter is the outbox that posts OOM kills to Kubernetes
// (*kubeevent.Reporter); nil disables Events. Its methods must never wait
// for the API server: the agent calls them on the protection loop. The
// agent hands it an Observer at New, for /healthz's view of the API
// server and for podwarden_reports_dropped_total.
type Reporter interface {
	PodOOM(ctx context.Context, o kubeevent.OOM) error
	NodeOOM(ctx context.Context, o kubeevent.OOM) error
	Observe(o kubeevent.Observer)
}

// eventObserver is what the agent learns from the outbox: its calls to
// the API server (a dependency of /healthz) and every report it drops.
type eventObserver struct {
	dep *dependency
	m   *Metrics
}

func (o eventObserver) Calling(what string) { o.dep.begin(what) }

func (o eventObserver) Called(err error) {
	o.dep.end(err)
	if err != nil {
		o.m.Errors.WithLabelValues("event").Inc()
	}
}

func (o eventObserver) Dropped(reason kubeevent.DropReason) {
	o.m.ReportsDropped.WithLabelValues(reason.String()).Inc()
}

// post hands an OOM's Event to the outbox, which never waits; a report it
// refuses is counted there.
func (a *Agent) post(o kubeevent.OOM, node bool) {
	if a.cfg.Reporter == nil {
		return
	}
	// Nothing here waits, so there is nothing to cancel.
	ctx := context.Background()
	var err error
	if node {
		err = a.cfg.Reporter.NodeOOM(ctx, o)
	} else {
		err = a.cfg.Reporter.PodOOM(ctx, o)
	}
	if err != nil {
		a.log.Warn("OOM Event not posted", "pod", o.Namespace+"/"+o.PodName, "err", err)
	}
}
