package status

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metric names status reads; the agent defines them (internal/agent).
const (
	metricProtectedContainers = "podwarden_protected_containers"
	metricProtectedProcesses  = "podwarden_protected_processes"
	metricOOMKills            = "podwarden_oom_kills_total"
	metricDriftRepairs        = "podwarden_drift_repairs_total"
	metricErrors              = "podwarden_errors_total"
	// One series per protected container, labels namespace, pod and
	// container. Agents before it show counts only.
	metricProtectedInfo = "podwarden_protected_container_info"
	metricBuildInfo     = "podwarden_build_info"
	// Early action (internal/preempt): what podwarden ended before the
	// kernel's OOM killer, and the pressure it chose not to act on.
	metricPreemptKills    = "podwarden_preempt_kills_total"
	metricPreemptRefusals = "podwarden_preempt_refusals_total"
	metricLadderStops     = "podwarden_preempt_ladder_stops_total"
)

// AgentMetrics is what status shows from one agent's /metrics. Counters
// count since the agent started.
type AgentMetrics struct {
	// Version is the agent's podwarden_build_info version ("" for agents
	// before it).
	Version             string             `json:"version,omitempty"`
	ProtectedContainers float64            `json:"protectedContainers"`
	ProtectedProcesses  float64            `json:"protectedProcesses"`
	ProtectedPods       []string           `json:"protectedPods,omitempty"`
	OOMKills            []OOMKillCount     `json:"oomKills"`
	OOMKillsTotal       float64            `json:"oomKillsTotal"`
	DriftRepairs        map[string]float64 `json:"driftRepairs"`
	DriftRepairsTotal   float64            `json:"driftRepairsTotal"`
	ErrorsTotal         float64            `json:"errorsTotal"`
	// EarlyKills are podwarden_preempt_kills_total's series without the
	// dry runs (which end nothing); EarlyKillsTotal their sum.
	EarlyKills      []EarlyKillCount `json:"earlyKills,omitempty"`
	EarlyKillsTotal float64          `json:"earlyKillsTotal"`
	// NotActed counts podwarden_preempt_refusals_total by reason: memory
	// ran short and no kill could help.
	NotActed map[string]float64 `json:"notActed,omitempty"`
	// KeptAlive counts podwarden_preempt_ladder_stops_total by the last
	// signal sent: victims that gave their memory back after it and were
	// left alive (a notebook kernel interrupted by SIGINT keeps its
	// session). Those are counted in EarlyKills too, by that signal.
	KeptAlive map[string]float64 `json:"keptAlive,omitempty"`
}

// EarlyKillCount is one series of podwarden_preempt_kills_total: the
// processes (or families) podwarden ended in a pod's container, by the
// scope that was short of memory and the signal that ended them.
type EarlyKillCount struct {
	Namespace string  `json:"namespace,omitempty"`
	Pod       string  `json:"pod"`
	Container string  `json:"container"`
	Scope     string  `json:"scope"`
	Signal    string  `json:"signal"`
	Count     float64 `json:"count"`
}

// OOMKillCount is one series of podwarden_oom_kills_total. Pod is the
// pod's name (its UID where the agent did not know the name); kind host
// (a host process killed in a node OOM) has no namespace, pod or container.
type OOMKillCount struct {
	Namespace string  `json:"namespace,omitempty"`
	Pod       string  `json:"pod"`
	Container string  `json:"container"`
	Kind      string  `json:"kind"`
	Count     float64 `json:"count"`
}

// PodRef is namespace/pod, or pod alone when the namespace is not known.
func PodRef(namespace, pod string) string {
	if namespace == "" {
		return pod
	}
	return namespace + "/" + pod
}

// ParseMetrics reads the Prometheus text format an agent serves and picks
// out podwarden's series. Unknown series are ignored, missing ones are
// zero: an older agent still shows what it has.
func ParseMetrics(r io.Reader) (AgentMetrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return AgentMetrics{}, fmt.Errorf("parsing metrics: %w", err)
	}
	m := AgentMetrics{DriftRepairs: map[string]float64{}, OOMKills: []OOMKillCount{}}
	m.ProtectedContainers = sum(fams[metricProtectedContainers], nil)
	m.ProtectedProcesses = sum(fams[metricProtectedProcesses], nil)
	m.ErrorsTotal = sum(fams[metricErrors], nil)
	m.DriftRepairsTotal = sum(fams[metricDriftRepairs], func(s *dto.Metric, v float64) {
		m.DriftRepairs[label(s, "kind")] += v
	})
	m.OOMKillsTotal = sum(fams[metricOOMKills], func(s *dto.Metric, v float64) {
		m.OOMKills = append(m.OOMKills, OOMKillCount{Namespace: label(s, "namespace"), Pod: label(s, "pod"),
			Container: label(s, "container"), Kind: label(s, "kind"), Count: v})
	})
	slices.SortFunc(m.OOMKills, func(a, b OOMKillCount) int {
		return strings.Compare(a.Namespace+"\x00"+a.Pod+"\x00"+a.Container+"\x00"+a.Kind, b.Namespace+"\x00"+b.Pod+"\x00"+b.Container+"\x00"+b.Kind)
	})
	sum(fams[metricPreemptKills], func(s *dto.Metric, v float64) {
		if label(s, "signal") == "dry-run" || v <= 0 {
			return
		}
		m.EarlyKillsTotal += v
		m.EarlyKills = append(m.EarlyKills, EarlyKillCount{Namespace: label(s, "namespace"), Pod: label(s, "pod"),
			Container: label(s, "container"), Scope: label(s, "scope"), Signal: label(s, "signal"), Count: v})
	})
	slices.SortFunc(m.EarlyKills, func(a, b EarlyKillCount) int {
		return strings.Compare(a.Namespace+"\x00"+a.Pod+"\x00"+a.Container+"\x00"+a.Signal, b.Namespace+"\x00"+b.Pod+"\x00"+b.Container+"\x00"+b.Signal)
	})
	sum(fams[metricPreemptRefusals], func(s *dto.Metric, v float64) {
		if v > 0 {
			if m.NotActed == nil {
				m.NotActed = map[string]float64{}
			}
			m.NotActed[label(s, "reason")] += v
		}
	})
	sum(fams[metricLadderStops], func(s *dto.Metric, v float64) {
		if v > 0 {
			if m.KeptAlive == nil {
				m.KeptAlive = map[string]float64{}
			}
			m.KeptAlive[label(s, "signal")] += v
		}
	})
	sum(fams[metricBuildInfo], func(s *dto.Metric, v float64) {
		if v > 0 {
			m.Version = label(s, "version")
		}
	})
	pods := map[string]bool{}
	sum(fams[metricProtectedInfo], func(s *dto.Metric, v float64) {
		if v > 0 {
			pods[PodRef(label(s, "namespace"), label(s, "pod"))] = true
		}
	})
	for p := range pods {
		m.ProtectedPods = append(m.ProtectedPods, p)
	}
	slices.Sort(m.ProtectedPods)
	return m, nil
}

// sum adds the values of a gauge or counter family, calling each (if not
// nil) per series.
func sum(f *dto.MetricFamily, each func(*dto.Metric, float64)) float64 {
	if f == nil {
		return 0
	}
	var total float64
	for _, s := range f.GetMetric() {
		var v float64
		switch {
		case s.GetCounter() != nil:
			v = s.GetCounter().GetValue()
		case s.GetGauge() != nil:
			v = s.GetGauge().GetValue()
		case s.GetUntyped() != nil:
			v = s.GetUntyped().GetValue()
		default:
			continue
		}
		total += v
		if each != nil {
			each(s, v)
		}
	}
	return total
}

func label(s *dto.Metric, name string) string {
	for _, l := range s.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// Agent is one agent pod and what could be read from it.
type Agent struct {
	Node      string        `json:"node"`
	Pod       string        `json:"pod"`
	Phase     string        `json:"phase"`
	Ready     bool          `json:"ready"`
	Restarts  int32         `json:"restarts"`
	StartedAt *time.Time    `json:"startedAt,omitempty"`
	Metrics   *AgentMetrics `json:"metrics,omitempty"`
	// Error says why Metrics is missing; the other agents are unaffected.
	Error string `json:"error,omitempty"`
}

// Cluster is the cluster view of `podwarden status`.
type Cluster struct {
	Namespace string  `json:"namespace"`
	Agents    []Agent `json:"agents"`
	// NodesWithoutAgent are nodes no agent pod is scheduled on.
	NodesWithoutAgent []string `json:"nodesWithoutAgent"`
	// Warnings are partial failures: nodes could not be listed, etc.
	Warnings []string `json:"warnings,omitempty"`
}
