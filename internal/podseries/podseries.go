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

// goneSince is what the Pruner remembers of a gone pod that has series.
type goneSince struct {
	at time.Time
	// scraped: a Collect returned the pod's series after it went.
	scraped bool
}

// Pruner is a prometheus.Collector that exports vec's series and deletes
// those of gone pods. Its methods are safe for concurrent use. It
// remembers only pods that have series, so its memory follows the series,
// not the pods a node ran.
type Pruner struct {
	vec   Vec
	grace time.Duration
	now   func() time.Time

	mu sync.Mutex
	// live is nil until the first SetLive: until the owner knows its
	// pods, none is gone.
	live map[Pod]struct{}
	// gone are the pods not live whose series were seen, since when.
	gone map[Pod]*goneSince
	// swept is when SetLive last looked for series nobody scrapes.
	swept time.Time
}

// New returns a Pruner of vec's series with grace as the least time a gone
// pod's series are still exported.
func New(vec Vec, grace time.Duration) *Pruner {
	return &Pruner{vec: vec, grace: grace, now: time.Now, gone: map[Pod]*goneSince{}}
}

// SetLive replaces the set of live pods. A gone pod's grace starts when
// its series are next seen (a scrape, or a sweep here at most once per
// grace, which also deletes the series nobody scraped for
// unscrapedFactor graces).
func (p *Pruner) SetLive(pods iter.Seq[Pod]) {
	live := map[Pod]struct{}{}
	for pod := range pods {
		live[pod] = struct{}{}
	}
	now := p.now()
	p.mu.Lock()
	p.live = live
	sweep := now.Sub(p.swept) >= p.grace
	if sweep {
		p.swept = now
	}
	p.mu.Unlock()
	if sweep {
		p.judge(gather(p.vec), false)
	}
}

// gather collects vec's series.
func gather(vec Vec) []prometheus.Metric {
	ch := make(chan prometheus.Metric, 64)
	go func() {
		vec.Collect(ch)
		close(ch)
	}()
	var all []prometheus.Metric
	for m := range ch {
		all = append(all, m)
	}
	return all
}

// Describe implements prometheus.Collector.
func (p *Pruner) Describe(ch chan<- *prometheus.Desc) { p.vec.Describe(ch) }

// Collect implements prometheus.Collector: it sends the series of live
// pods, and of gone pods still in their grace or not yet scraped since
// they went; the others are deleted.
func (p *Pruner) Collect(ch chan<- prometheus.Metric) {
	// The lock is not held while sending: the owner's SetLive (on a
	// protection path) never waits for a scrape.
	for _, m := range p.judge(gather(p.vec), true) {
		ch <- m
	}
}

// judge returns the series of all to export and deletes the expired ones:
// after the grace once scraped, or after unscrapedFactor graces. It
// forgets gone pods that no longer have series.
func (p *Pruner) judge(all []prometheus.Metric, scrape bool) []prometheus.Metric {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	out := all[:0]
	seen := map[Pod]bool{} // gone pods with series; true: expired
	for _, m := range all {
		pod, ok := podOf(m)
		if _, live := p.live[pod]; !ok || pod.Name == "" || p.live == nil || live {
			out = append(out, m)
			continue
		}
		g := p.gone[pod]
		if g == nil {
			g = &goneSince{at: now}
			p.gone[pod] = g
		}
		age := now.Sub(g.at)
		if g.scraped && age >= p.grace || age >= unscrapedFactor*p.grace {
			seen[pod] = true
			continue
		}
		if _, ok := seen[pod]; !ok {
			seen[pod] = false
		}
		out = append(out, m)
	}
	for pod, g := range p.gone {
		expired, ok := seen[pod]
		switch {
		case !ok:
			delete(p.gone, pod) // no series (left), or live again
		case expired:
			p.vec.DeletePartialMatch(prometheus.Labels{LabelNamespace: pod.Namespace, LabelPod: pod.Name})
			delete(p.gone, pod)
		case scrape:
			g.scraped = true
		}
	}
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
