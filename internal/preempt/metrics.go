package preempt

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"podwarden/internal/podseries"
)

// Label sets of the engine's series, in one place: a pod's series are
// found by these when it is gone (ForgetPod).
var (
	killLabels       = []string{"namespace", "pod", "container", "scope", "signal"}
	signalLabels     = []string{"signal", "result"}
	episodeLabels    = []string{"scope", "outcome"}
	refusalLabels    = []string{"scope", "reason"}
	ladderStopLabels = []string{"scope", "signal"}
)

// Metrics are the engine's Prometheus series, registered on the registry
// the caller passes (nil: not registered).
type Metrics struct {
	Kills    *prometheus.CounterVec
	Signals  *prometheus.CounterVec
	Episodes *prometheus.CounterVec
	Refusals *prometheus.CounterVec
	// LadderStops are victims left alive because memory came back before
	// the ladder's last step, by the last signal sent.
	LadderStops *prometheus.CounterVec
	Dropped     prometheus.Counter
	Triggers    prometheus.Gauge

	// killSeries exports Kills in its place and deletes a gone pod's
	// series after a grace and a scrape (the agent's rule, docs/agent.md).
	killSeries *podseries.Pruner
}

// NewMetrics creates the series and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return newMetrics(reg, podseries.DefaultGrace)
}

func newMetrics(reg prometheus.Registerer, grace time.Duration) *Metrics {
	m := &Metrics{
		Kills: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podwarden_preempt_kills_total",
			Help: "Processes (or families of processes, counted once) podwarden ended under memory pressure before the kernel OOM killer, by namespace, pod (its name, or its UID where the name is not known), container, scope (node, container) and the signal that ended them; dry runs count with signal \"dry-run\"."},
			killLabels),
		Signals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podwarden_preempt_signals_total", Help: "Signals sent by the action ladder, by signal and result (ok, exited, error)."},
			signalLabels),
		Episodes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podwarden_preempt_episodes_total",
			Help: "Pressure episodes by scope and outcome (killed, recovered, dry-run, target_gone, refused, opted_out, no_target, stuck)."},
			episodeLabels),
		Refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podwarden_preempt_refusals_total",
			Help: "Times memory was short but podwarden ended nothing because no kill could help, by scope and reason: no_growth (no target growing: pressure from outside the targets or memory held flat), shmem (the growth is shmem or tmpfs), not_process_memory (kernel memory or unreclaimable cache), kill_too_small (ending the culprit would not take the scope out of danger). Counted once per cooldown."},
			refusalLabels),
		LadderStops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podwarden_preempt_ladder_stops_total",
			Help: "Victims left alive because memory came back after a signal short of the ladder's last step (a notebook kernel interrupted by SIGINT keeps its session), by scope and the last signal sent. Families are never given the ladder and never count here."},
			ladderStopLabels),
		Dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podwarden_preempt_reports_dropped_total", Help: "Message files dropped because the report queue was full; Events are counted in podwarden_reports_dropped_total."}),
		Triggers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podwarden_preempt_psi_triggers", Help: "PSI triggers armed (the node's and one per target container); 0 means pressure is polled."}),
	}
	m.killSeries = podseries.New(m.Kills, grace)
	if reg != nil {
		reg.MustRegister(m.killSeries, m.Signals, m.Episodes, m.Refusals, m.LadderStops, m.Dropped, m.Triggers)
	}
	return m
}

// setLivePods tells the kill series which pods are targets now, by the
// namespace and pod labels they are counted under; the others' series go
// after the grace.
func (m *Metrics) setLivePods(ts []Target) {
	m.killSeries.SetLive(func(yield func(podseries.Pod) bool) {
		for _, t := range ts {
			if !yield(podseries.Pod{Namespace: t.Namespace, Name: t.PodLabel()}) {
				return
			}
		}
	})
}
