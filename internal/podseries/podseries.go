// Package podseries deletes the Prometheus series of pods that are gone,
// the way kube-state-metrics deletes the series of deleted objects, so a
// counter labelled by pod does not keep one series for every pod a node
// ever ran.
//
// A Pruner wraps a vector whose labels include "namespace" and "pod" and
// is registered in its place; the code that counts keeps using the vector.
// Its owner says which pods are live (SetLive). A series whose pod is not
// live is still exported until its pod has been gone for the grace period
// and at least one scrape has returned it since, so the last increment
// (often counted just after the pod went: an OOM kill ends a container)
// is seen. Series with an empty pod label belong to no pod and stay.
package podseries

import (
	"iter"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The label names a Pruner reads.
const (
	LabelNamespace = "namespace"
	LabelPod       = "pod"
)

// DefaultGrace is the grace podwarden's series use: longer than a scrape
// interval, so the last increment is seen, and than CrashLoopBackOff's
// longest wait (5 minutes), so a container restarting slowly keeps its
// count.
const DefaultGrace = 10 * time.Minute

// unscrapedFactor times the grace is how long a gone pod's series stay
// when nobody scrapes: without it they would live as long as the process
// on an agent nobody monitors.
const unscrapedFactor = 6

// Pod is a pod as the series label it.
type Pod struct{ Namespace, Name string }

// Vec is what a Pruner wraps: *prometheus.CounterVec, *prometheus.GaugeVec
// and the other vectors.
type Vec interface {
	prometheus.Collector
	DeletePartialMatch(labels prometheus.Labels) int
}

// goneSince is what the Pruner remembers of a pod that is not live.
type goneSince struct {
	at time.Time
	// scraped: a Collect returned the pod's series after it went.
	scraped bool
}

// Pruner is a prometheus.Collector that exports vec's series and deletes
// those of gone pods. Its methods are safe for concurrent use.
type Pruner struct {
	vec   Vec
	grace time.Duration
	now   func() time.Time

	mu sync.Mutex
	// live is nil until the first SetLive: until the owner knows its
	// pods, none is gone.
	live map[Pod]struct{}
	gone map[Pod]*goneSince
}

// New returns a Pruner of vec's series with grace as the least time a gone
// pod's series are still exported.
func New(vec Vec, grace time.Duration) *Pruner {
	return &Pruner{vec: vec, grace: grace, now: time.Now, gone: map[Pod]*goneSince{}}
}

// SetLive replaces the set of live pods. A pod that leaves it starts its
// grace now.
func (p *Pruner) SetLive(pods iter.Seq[Pod]) {
	live := map[Pod]struct{}{}
	for pod := range pods {
		live[pod] = struct{}{}
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for pod := range p.live {
		if _, ok := live[pod]; !ok && p.gone[pod] == nil {
			p.gone[pod] = &goneSince{at: now}
		}
	}
	for pod := range live {
		delete(p.gone, pod)
	}
	p.live = live
	p.expire(now)
}

// expire deletes the series of pods gone for long whether or not they were
// scraped, and forgets those pods.
func (p *Pruner) expire(now time.Time) {
	for pod, g := range p.gone {
		if now.Sub(g.at) >= unscrapedFactor*p.grace {
			p.delete(pod)
		}
	}
}

func (p *Pruner) delete(pod Pod) {
	p.vec.DeletePartialMatch(prometheus.Labels{LabelNamespace: pod.Namespace, LabelPod: pod.Name})
	delete(p.gone, pod)
}

// Describe implements prometheus.Collector.
func (p *Pruner) Describe(ch chan<- *prometheus.Desc) { p.vec.Describe(ch) }

// Collect implements prometheus.Collector: it sends the series of live
// pods, and of gone pods still in their grace or not yet scraped since
// they went; the others are deleted.
func (p *Pruner) Collect(ch chan<- prometheus.Metric) {
	metrics := make(chan prometheus.Metric, 64)
	go func() {
		p.vec.Collect(metrics)
		close(metrics)
	}()
	var all []prometheus.Metric
	for m := range metrics {
		all = append(all, m)
	}
	// The lock is not held while sending: the owner's SetLive (on a
	// protection path) never waits for a scrape.
	for _, m := range p.keep(all) {
		ch <- m
	}
}

// keep returns the metrics to send and deletes the expired series.
func (p *Pruner) keep(all []prometheus.Metric) []prometheus.Metric {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	out := all[:0]
	var sent, expired map[Pod]bool
	for _, m := range all {
		pod, ok := podOf(m)
		if _, live := p.live[pod]; !ok || pod.Name == "" || p.live == nil || live {
			out = append(out, m)
			continue
		}
		g := p.gone[pod]
		if g == nil {
			// Counted after its pod left the live set.
			g = &goneSince{at: now}
			p.gone[pod] = g
		}
		if g.scraped && now.Sub(g.at) >= p.grace {
			if expired == nil {
				expired = map[Pod]bool{}
			}
			expired[pod] = true
			continue
		}
		if sent == nil {
			sent = map[Pod]bool{}
		}
		sent[pod] = true
		out = append(out, m)
	}
	for pod := range sent {
		p.gone[pod].scraped = true
	}
	for pod := range expired {
		p.delete(pod)
	}
	p.expire(now)
	return out
}

// podOf reads the namespace and pod labels of m; ok is false when m has no
// pod label.
func podOf(m prometheus.Metric) (pod Pod, ok bool) {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return Pod{}, false
	}
	for _, l := range d.GetLabel() {
		switch l.GetName() {
		case LabelNamespace:
			pod.Namespace = l.GetValue()
		case LabelPod:
			pod.Name, ok = l.GetValue(), true
		}
	}
	return pod, ok
}
