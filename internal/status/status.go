package status

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
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

// Options select the agents and bound the work.
type Options struct {
	Namespace string // of the DaemonSet
	Selector  string // label selector of its pods
	// MetricsTimeout bounds each agent's /metrics read (default 5s).
	MetricsTimeout time.Duration
	// Parallel is how many agents are read at once (default 16).
	Parallel int
}

// DefaultMetricsPort is used when an agent pod has no port named "metrics".
const DefaultMetricsPort = "9808"

// Read lists the agent pods and reads each one's /metrics through
// the API server's pod proxy (pods/proxy, so the user needs no network
// path to the nodes). Listing the pods must work; everything else is
// reported per agent or as a warning.
func Read(ctx context.Context, client typedcorev1.CoreV1Interface, o Options) (Cluster, error) {
	if o.MetricsTimeout <= 0 {
		o.MetricsTimeout = 5 * time.Second
	}
	if o.Parallel <= 0 {
		o.Parallel = 16
	}
	pods, err := client.Pods(o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: o.Selector})
	if err != nil {
		return Cluster{}, fmt.Errorf("listing agent pods in %s (%s): %w", o.Namespace, o.Selector, err)
	}
	st := Cluster{Namespace: o.Namespace, Agents: make([]Agent, len(pods.Items)), NodesWithoutAgent: []string{}}
	sem := make(chan struct{}, o.Parallel)
	var wg sync.WaitGroup
	for i := range pods.Items {
		pod := &pods.Items[i]
		st.Agents[i] = agentOf(pod)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			m, err := readMetrics(ctx, client, pod, o.MetricsTimeout)
			if err != nil {
				st.Agents[i].Error = err.Error()
				return
			}
			st.Agents[i].Metrics = &m
		}()
	}
	wg.Wait()
	slices.SortFunc(st.Agents, func(a, b Agent) int { return strings.Compare(a.Node+"\x00"+a.Pod, b.Node+"\x00"+b.Pod) })

	nodes, err := client.Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		st.Warnings = append(st.Warnings, fmt.Sprintf("cannot list nodes, so nodes without an agent are not shown: %v", err))
		return st, nil
	}
	have := map[string]bool{}
	for _, a := range st.Agents {
		have[a.Node] = true
	}
	for _, n := range nodes.Items {
		if !have[n.Name] {
			st.NodesWithoutAgent = append(st.NodesWithoutAgent, n.Name)
		}
	}
	slices.Sort(st.NodesWithoutAgent)
	return st, nil
}

func agentOf(pod *corev1.Pod) Agent {
	a := Agent{Node: pod.Spec.NodeName, Pod: pod.Name, Phase: string(pod.Status.Phase)}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			a.Ready = c.Status == corev1.ConditionTrue
		}
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name != "agent" {
			continue
		}
		a.Restarts = cs.RestartCount
		if cs.State.Running != nil {
			t := cs.State.Running.StartedAt.Time
			a.StartedAt = &t
		}
	}
	return a
}

func metricsPort(pod *corev1.Pod) string {
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == "metrics" {
				return strconv.Itoa(int(p.ContainerPort))
			}
		}
	}
	return DefaultMetricsPort
}

func readMetrics(ctx context.Context, client typedcorev1.CoreV1Interface, pod *corev1.Pod, timeout time.Duration) (AgentMetrics, error) {
	if pod.Status.PodIP == "" {
		// The proxy would only say "address not allowed".
		return AgentMetrics{}, fmt.Errorf("pod has no IP yet (phase %s): not running", pod.Status.Phase)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	b, err := client.Pods(pod.Namespace).ProxyGet("http", pod.Name, metricsPort(pod), "metrics", nil).DoRaw(ctx)
	if err != nil {
		// For proxy failures the API server's reason (dial error, ...) is
		// in the body, not in client-go's generic error.
		var apiStatus metav1.Status
		if json.Unmarshal(b, &apiStatus) == nil && apiStatus.Message != "" {
			err = fmt.Errorf("%w: %s", err, apiStatus.Message)
		} else if body := strings.TrimSpace(string(b)); body != "" && len(body) < 500 {
			err = fmt.Errorf("%w: %s", err, body)
		}
		return AgentMetrics{}, fmt.Errorf("reading /metrics through the API server proxy: %w", err)
	}
	return ParseMetrics(bytes.NewReader(b))
}
