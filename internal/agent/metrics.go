package agent

import (
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"podwarden/internal/oomreport"
	"podwarden/internal/podseries"
)

// SeriesGrace is how long a gone pod's OOM series are still exported (and
// at least one scrape returns them) before they are deleted.
const SeriesGrace = podseries.DefaultGrace

// Metrics are the agent's Prometheus series. They are registered on the
// registry the caller passes, never on a global one.
type Metrics struct {
	ProtectedContainers prometheus.Gauge
	ProtectedProcesses  prometheus.Gauge
	Changes             *prometheus.CounterVec
	DriftRepairs        *prometheus.CounterVec
	OOMKills            *prometheus.CounterVec
	// ProtectedInfo has one series (value 1) per target container.
	ProtectedInfo   *prometheus.GaugeVec
	Reconcile       *prometheus.HistogramVec
	ProtectLatency  prometheus.Histogram
	Errors          *prometheus.CounterVec
	EventsLost      *prometheus.CounterVec
	DependencyUp    *prometheus.GaugeVec
	ReportsDropped  *prometheus.CounterVec
	KernelLogSource *prometheus.GaugeVec
	// CgroupWatches is set from the cgroup watcher at every fast pass.
	CgroupWatches prometheus.Gauge

	// oomSeries exports OOMKills in its place and deletes the series of
	// gone pods; the loop tells it which pods are live.
	oomSeries *podseries.Pruner
}

// NewMetrics creates the series and registers them on reg (nil: not
// registered, for tests and dry runs).
func NewMetrics(reg prometheus.Registerer) *Metrics { return newMetrics(reg, SeriesGrace) }

// newMetrics is NewMetrics with the grace of gone pods' series.
func newMetrics(reg prometheus.Registerer, grace time.Duration) *Metrics {
	m := &Metrics{
		ProtectedContainers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podwarden_protected_containers", Help: "Target containers the policy currently applies to."}),
		ProtectedProcesses: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podwarden_protected_processes", Help: "Processes in target containers at the last full reconcile."}),
		Changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podwarden_changes_total", Help: "Writes made, by kind (oom.group, oom_score_adj, host_oom_score_adj) and result."},
			[]string{"kind", "result"}),
		DriftRepairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podwarden_drift_repairs_total", Help: "Writes that repaired a value something had put back after the agent fixed it."},
			[]string{"kind"}),
		OOMKills: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podwarden_oom_kills_total", Help: "Processes the kernel OOM-killed in target containers (kind cgroup: a memory limit; node: the node ran out; unknown: seen only through memory.events) and host processes killed in node OOMs (kind host, no pod)."},
			[]string{"namespace", "pod", "container", "kind"}),
		ProtectedInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "podwarden_protected_container_info", Help: "1 for each target container the agent protects now (pod is the pod's name, or its UID where the name is not known)."},
			[]string{"namespace", "pod", "container"}),
		Reconcile: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "podwarden_reconcile_duration_seconds", Help: "Time of one reconcile, by trigger.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}, []string{"trigger"}),
		ProtectLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "podwarden_protect_latency_seconds", Help: "From a new process or cgroup event to its writes being done.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 3, 12)}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podwarden_errors_total", Help: "Errors by operation."}, []string{"op"}),
		EventsLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podwarden_events_lost_total", Help: "Kernel event overruns (each forces a full rescan), by source."}, []string{"source"}),
		DependencyUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "podwarden_dependency_up", Help: "1 when the last call to a dependency (container-runtime, kube-apiserver) succeeded, 0 when it failed. Protection never waits for either."},
			[]string{"dependency"}),
		ReportsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podwarden_reports_dropped_total", Help: "Events (OOM kills, early action) not posted, by reason: queue_full (the outbox was full), backoff (the API server failed lately), rate_limited (the object's Event burst is spent), pod_gone (the pod is gone or replaced), api_error (the API server refused or did not answer), invalid (the report lacked the pod's identity)."},
			[]string{"reason"}),
		KernelLogSource: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "podwarden_kernel_log_source", Help: "1 for the source OOM kills are learnt from (kmsg, syslog, memory.events), 0 for the others."},
			[]string{"source"}),
		CgroupWatches: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podwarden_cgroup_watches", Help: "inotify watches held on the cgroup tree (one per cgroup directory; each counts against fs.inotify.max_user_watches)."}),
	}
	m.oomSeries = podseries.New(m.OOMKills, grace)
	if reg != nil {
		reg.MustRegister(m.ProtectedContainers, m.ProtectedProcesses, m.Changes, m.DriftRepairs, m.oomSeries, m.ProtectedInfo,
			m.Reconcile, m.ProtectLatency, m.Errors, m.EventsLost, m.DependencyUp, m.ReportsDropped, m.KernelLogSource,
			m.CgroupWatches)
	}
	return m
}

// setLivePods tells the series pruners which pods have targets now; the
// series of the others go after the grace.
func (m *Metrics) setLivePods(ts []Target) {
	m.oomSeries.SetLive(func(yield func(podseries.Pod) bool) {
		for i := range ts {
			l := ts[i].Labels()
			if !yield(podseries.Pod{Namespace: l[0], Name: l[1]}) {
				return
			}
		}
	})
}

// The kind label of podwarden_oom_kills_total: a small fixed set, so
// alerts and dashboards can name every value (docs/agent.md). The kinds of
// OOM are oomreport's; host is the agent's own split of node OOMs.
const (
	// OOMKindCgroup: a target's process killed because a memory cgroup
	// limit (the container's or the pod's) was reached.
	OOMKindCgroup = string(oomreport.KindCgroup)
	// OOMKindNode: a target's process killed in a node-wide OOM.
	OOMKindNode = string(oomreport.KindNode)
	// OOMKindHost: a host process (in no pod and no container) killed in
	// a node-wide OOM; namespace, pod and container are empty.
	OOMKindHost = "host"
	// OOMKindUnknown: a kill in a target seen only through its
	// memory.events counter (no kernel log), which does not say which
	// limit was hit; also a kernel report that did not say.
	OOMKindUnknown = string(oomreport.KindUnknown)
)

// OOMKinds are all values of the kind label, in the order docs list them.
var OOMKinds = []string{OOMKindCgroup, OOMKindNode, OOMKindHost, OOMKindUnknown}

// RegisterBuildInfo registers podwarden_build_info{version,goversion} = 1
// on reg, so dashboards and alerts can tell which agent runs where.
func RegisterBuildInfo(reg prometheus.Registerer, version string) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "podwarden_build_info", Help: "1, labelled with the agent's version and the Go version it was built with."},
		[]string{"version", "goversion"})
	g.WithLabelValues(version, runtime.Version()).Set(1)
	reg.MustRegister(g)
}
