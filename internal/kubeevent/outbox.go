package kubeevent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// errPodMismatch means the pod at namespace/name is not the one the report
// is about (it was replaced by a pod with the same name, a StatefulSet
// restart for example). No Event is attached to the wrong pod.
var errPodMismatch = errors.New("pod UID does not match")

// errPodGone means the pod no longer exists.
var errPodGone = errors.New("pod not found")

// run is the outbox's goroutine: the only one that waits for the API
// server. A job is dropped (and counted) while the outbox backs off after
// a failure, when its pod is gone, when its object's rate limit is spent
// and when the server does not take it.
func (r *Reporter) run(ctx context.Context) {
	defer close(r.done)
	corr := newCorrelator()
	for {
		var j job
		select {
		case <-ctx.Done():
			return
		case j = <-r.queue:
		}
		r.dequeued(j)
		if r.now().Before(r.until) {
			r.dropped(DropBackoff)
			continue
		}
		ref := objectRef{Kind: "Node", APIVersion: "v1", Name: r.node, UID: r.node}
		if j.pod != nil {
			var err error
			if ref, err = r.lookup(ctx, j); err != nil {
				if ctx.Err() != nil {
					return
				}
				if errors.Is(err, errPodGone) || errors.Is(err, errPodMismatch) {
					r.log.Debug("no Event: the pod is not there", "reason", j.reason, "err", err)
					r.dropped(DropPodGone)
				} else {
					r.fail(j, err)
				}
				continue
			}
		}
		out, repeat, ok := corr.correlate(r.event(ref, j), r.now())
		if !ok {
			r.dropped(DropRateLimited)
			continue
		}
		err := r.call(fmt.Sprintf("post %s Event on %s %s", out.Reason, ref.Kind, ref.Name), func() error {
			return r.write(ctx, out, repeat)
		})
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if repeat {
				corr.forget(out)
			}
			r.fail(j, err)
			continue
		}
		r.delay = 0
	}
}

// call runs f as one call to the API server, told to the observer.
func (r *Reporter) call(what string, f func() error) error {
	o := r.observer()
	if o != nil {
		o.Calling(what)
	}
	err := f()
	if o != nil {
		if errors.Is(err, errPodGone) || errors.Is(err, errPodMismatch) {
			o.Called(nil) // the server answered: it is healthy, the pod is not there
		} else {
			o.Called(err)
		}
	}
	return err
}

// fail counts j as dropped by the API server and backs off, so a server
// that does not answer costs one timeout per backoff, not one per report.
func (r *Reporter) fail(j job, err error) {
	r.delay = min(max(2*r.delay, minBackoff), maxBackoff)
	r.until = r.now().Add(r.delay)
	r.dropped(DropAPIError)
	where := "node " + r.node
	if j.pod != nil {
		where = "pod " + j.pod.namespace + "/" + j.pod.name
	}
	r.log.Warn("Event not posted: backing off", "reason", j.reason, "object", where, "err", err, "retry_in", r.delay)
}

// event is j as the API server takes it, referring to ref.
func (r *Reporter) event(ref objectRef, j job) *event {
	ns := ref.Namespace
	if ns == "" {
		ns = "default" // Events on cluster-scoped objects live here, as client-go puts them
	}
	return &event{
		APIVersion: "v1", Kind: "Event",
		// client-go's naming: unique per object and time.
		Metadata:       eventMeta{Name: fmt.Sprintf("%s.%x", ref.Name, j.at.UnixNano()), Namespace: ns},
		InvolvedObject: ref, Reason: j.reason, Message: j.msg,
		Source:         source{Component: Component, Host: r.node},
		FirstTimestamp: stamp(j.at), LastTimestamp: stamp(j.at), Count: 1, Type: j.typ,
		ReportingController: Component, ReportingInstance: r.node,
	}
}

// write creates e or, for a repeat, patches its count; a repeat whose
// Event the server no longer has (expired after the Event TTL, or
// deleted) is created again. Each try has r.timeout; one that runs out
// is not repeated (retryable), so a hung server costs one timeout.
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
		cctx, cancel := context.WithTimeout(ctx, r.timeout)
		if repeat {
			err = r.c.patchEvent(cctx, e)
			if isStatus(err, http.StatusNotFound) {
				repeat = false
				err = r.c.createEvent(cctx, e)
			}
		} else {
			err = r.c.createEvent(cctx, e)
		}
		cancel()
		if isStatus(err, http.StatusConflict) {
			// Created by an earlier try whose reply was lost.
			return nil
		}
		if err == nil || ctx.Err() != nil || !retryable(err) {
			return err
		}
	}
	return err
}

// lookup returns the Event's reference to j's pod after checking its UID,
// from a short-lived cache so a storm of kills in one pod costs one GET,
// and a pod found gone is not asked for again for goneTTL.
func (r *Reporter) lookup(ctx context.Context, j job) (objectRef, error) {
	id, now := *j.pod, r.now()
	if at, ok := r.gone[id]; ok && now.Sub(at) < goneTTL {
		return objectRef{}, fmt.Errorf("pod %s/%s (uid %s), found gone %s ago: %w", id.namespace, id.name, id.uid, now.Sub(at).Round(time.Second), errPodGone)
	}
	key := podKey{id.namespace, id.name}
	v, ok := r.verified[key]
	if !ok || v.uid != id.uid || now.Sub(v.at) > verifyTTL {
		var p *pod
		err := r.call("read pod "+id.namespace+"/"+id.name+" for its Event", func() error {
			cctx, cancel := context.WithTimeout(ctx, r.timeout)
			defer cancel()
			var err error
			p, err = r.c.getPod(cctx, id.namespace, id.name)
			switch {
			case isStatus(err, http.StatusNotFound):
				return fmt.Errorf("pod %s/%s (uid %s): %w", id.namespace, id.name, id.uid, errPodGone)
			case err != nil:
				return fmt.Errorf("reading pod %s/%s: %w", id.namespace, id.name, err)
			case p.Metadata.UID != id.uid:
				return fmt.Errorf("pod %s/%s has uid %s, the report is about uid %s: %w", id.namespace, id.name, p.Metadata.UID, id.uid, errPodMismatch)
			}
			return nil
		})
		if errors.Is(err, errPodGone) || errors.Is(err, errPodMismatch) {
			if len(r.gone) >= maxGone {
				clear(r.gone) // rare; a re-read per pod is cheap
			}
			r.gone[id] = now
		}
		if err != nil {
			return objectRef{}, err
		}
		v = verifiedPod{uid: p.Metadata.UID, containers: fieldPaths(p), at: now}
		if len(r.verified) >= maxVerified {
			clear(r.verified)
		}
		r.verified[key] = v
	}
	return objectRef{
		Kind: "Pod", APIVersion: "v1", Namespace: id.namespace, Name: id.name, UID: v.uid,
		FieldPath: v.containers[j.container],
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
