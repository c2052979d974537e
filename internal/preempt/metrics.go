package preempt

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the engine's Prometheus series, registered on the registry
// the caller passes (nil: not registered).
type Metrics struct {
	Kills    *prometheus.CounterVec
	Signals  *prometheus.CounterVec
	Episodes *prometheus.CounterVec
	Dropped  prometheus.Counter
	Triggers prometheus.Gauge
}

// NewMetrics creates the series and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Kills: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podwarden_preempt_kills_total",
			Help: "Processes podwarden ended under memory pressure before the kernel OOM killer, by namespace, pod (its name, or its UID where the name is not known), container, scope (node, container, pod) and the signal that ended them; dry runs count with signal \"dry-run\"."},
			[]string{"namespace", "pod", "container", "scope", "signal"}),
		Signals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podwarden_preempt_signals_total", Help: "Signals sent by the action ladder, by signal and result (ok, exited, error)."},
			[]string{"signal", "result"}),
		Episodes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podwarden_preempt_episodes_total",
			Help: "Pressure episodes by scope and outcome (killed, recovered, dry_run, target_gone, nothing_killable, opted_out, no_target, stuck)."},
			[]string{"scope", "outcome"}),
		Dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podwarden_preempt_reports_dropped_total", Help: "Events and message files dropped because the report queue was full."}),
		Triggers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podwarden_preempt_psi_triggers", Help: "PSI triggers armed (the node's and one per target container); 0 means pressure is polled."}),
	}
	if reg != nil {
		reg.MustRegister(m.Kills, m.Signals, m.Episodes, m.Dropped, m.Triggers)
	}
	return m
}
