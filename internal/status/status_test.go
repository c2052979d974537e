package status_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	restclient "k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"podwarden/internal/status"
)

// testdata/agent-metrics.txt is the text format promhttp serves for the
// agent's registry (podwarden_* plus a Go collector and a histogram).
func TestParseMetrics(t *testing.T) {
	f, err := os.Open("testdata/agent-metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := status.ParseMetrics(f)
	if err != nil {
		t.Fatal(err)
	}
	want := status.AgentMetrics{
		Version:             "v0.1.0",
		ProtectedContainers: 3,
		ProtectedProcesses:  41,
		ProtectedPods:       []string{"batch/train-7", "ml/nb-0"},
		OOMKills: []status.OOMKillCount{
			{Namespace: "batch", Pod: "train-7", Container: "worker", Kind: "cgroup", Count: 1},
			{Namespace: "ml", Pod: "nb-0", Container: "notebook", Kind: "node", Count: 4},
		},
		OOMKillsTotal:     5,
		DriftRepairs:      map[string]float64{"oom.group": 3, "oom_score_adj": 2},
		DriftRepairsTotal: 5,
		ErrorsTotal:       1,
		// The dry run ended nothing: not an early kill.
		EarlyKills: []status.EarlyKillCount{
			{Namespace: "ml", Pod: "nb-0", Container: "notebook", Scope: "node", Signal: "SIGINT", Count: 2},
			{Namespace: "ml", Pod: "nb-0", Container: "notebook", Scope: "node", Signal: "SIGKILL", Count: 1},
		},
		EarlyKillsTotal: 3,
		NotActed:        map[string]float64{"no_growth": 2, "shmem": 1},
		// Both SIGINTs gave the memory back; a zero series is no row.
		KeptAlive: map[string]float64{"SIGINT": 2},
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("got  %+v\nwant %+v", m, want)
	}
}

func TestParseMetricsOldAgent(t *testing.T) {
	m, err := status.ParseMetrics(strings.NewReader("# TYPE podwarden_protected_containers gauge\npodwarden_protected_containers 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m.ProtectedContainers != 2 || m.OOMKillsTotal != 0 || len(m.ProtectedPods) != 0 {
		t.Errorf("%+v", m)
	}
	if _, err := status.ParseMetrics(strings.NewReader("<html>502 Bad Gateway</html>")); err == nil {
		t.Error("HTML accepted as metrics")
	}
}

func FuzzParseMetrics(f *testing.F) {
	seed, err := os.ReadFile("testdata/agent-metrics.txt")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte("podwarden_oom_kills_total{pod=\"a\"} NaN\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = status.ParseMetrics(bytes.NewReader(b))
	})
}

// rawResponse stands in for the API server's proxy response in the fake
// clientset (which has no proxy of its own).
type rawResponse struct {
	body []byte
	err  error
}

func (r rawResponse) DoRaw(context.Context) ([]byte, error) { return r.body, r.err }
func (r rawResponse) Stream(context.Context) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(r.body)), r.err
}

func agentPod(name, node string, ready bool) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "podwarden-system", Name: name, Labels: map[string]string{"app.kubernetes.io/name": "podwarden"}},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "agent", Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9808}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1", Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "agent", RestartCount: 2}}},
	}
}

// Unit test with the fake clientset and a faked proxy: one agent answers
// with the fixture, one fails, one node has no agent.
func TestReadStatusFake(t *testing.T) {
	metrics, err := os.ReadFile("testdata/agent-metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientset(
		agentPod("podwarden-a", "node-a", true), agentPod("podwarden-b", "node-b", false),
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "podwarden-system", Name: "other", Labels: map[string]string{"app": "x"}}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-b"}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-c"}},
	)
	var ports []string
	c.AddProxyReactor("pods", func(a k8stesting.Action) (bool, restclient.ResponseWrapper, error) {
		p := a.(k8stesting.ProxyGetAction)
		ports = append(ports, p.GetPort()+p.GetPath())
		if p.GetName() == "podwarden-a" {
			return true, rawResponse{body: metrics}, nil
		}
		return true, rawResponse{err: errors.New("dial tcp 10.0.0.2:9808: connect: connection refused")}, nil
	})
	st, err := status.Read(t.Context(), c.CoreV1(), status.Options{Namespace: "podwarden-system", Selector: "app.kubernetes.io/name=podwarden"})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Agents) != 2 || st.Agents[0].Node != "node-a" || st.Agents[1].Node != "node-b" {
		t.Fatalf("agents %+v", st.Agents)
	}
	a, b := st.Agents[0], st.Agents[1]
	if !a.Ready || a.Restarts != 2 || a.Metrics == nil || a.Metrics.OOMKillsTotal != 5 || a.Error != "" {
		t.Errorf("node-a %+v", a)
	}
	if b.Ready || b.Metrics != nil || !strings.Contains(b.Error, "connection refused") {
		t.Errorf("node-b %+v", b)
	}
	if !reflect.DeepEqual(st.NodesWithoutAgent, []string{"node-c"}) {
		t.Errorf("nodes without agent %v", st.NodesWithoutAgent)
	}
	for _, p := range ports {
		if p != "9808metrics" {
			t.Errorf("proxied %q, want port 9808 path metrics", p)
		}
	}
}

func TestReadStatusNodesForbidden(t *testing.T) {
	c := fake.NewClientset(agentPod("podwarden-a", "node-a", true))
	c.PrependReactor("list", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New(`nodes is forbidden: User "alice" cannot list resource "nodes"`)
	})
	c.AddProxyReactor("pods", func(k8stesting.Action) (bool, restclient.ResponseWrapper, error) {
		return true, rawResponse{body: []byte("podwarden_protected_containers 1\n")}, nil
	})
	st, err := status.Read(t.Context(), c.CoreV1(), status.Options{Namespace: "podwarden-system"})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "forbidden") || st.Agents[0].Metrics == nil {
		t.Errorf("%+v", st)
	}
}

// hungResponse is an agent that accepts the request and never answers: its
// Stream returns only when the read's deadline passes.
type hungResponse struct{ inflight, peak *atomic.Int64 }

func (h hungResponse) DoRaw(ctx context.Context) ([]byte, error) {
	_, err := h.Stream(ctx)
	return nil, err
}

func (h hungResponse) Stream(ctx context.Context) (io.ReadCloser, error) {
	n := h.inflight.Add(1)
	defer h.inflight.Add(-1)
	for p := h.peak.Load(); n > p && !h.peak.CompareAndSwap(p, n); p = h.peak.Load() {
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// endless is a body that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '#'
	}
	return len(p), nil
}

// TestReadStatusFaults: hung agents are read MaxInflight at a time, each
// named with the timeout it got; an agent page that never ends is cut at
// MaxMetricsBytes and named; the pod and node lists are read in pages; every
// healthy agent is read and Progress counts them all.
func TestReadStatusFaults(t *testing.T) {
	metrics, err := os.ReadFile("testdata/agent-metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	const agents, maxInflight = 40, 6
	var objs []runtime.Object
	for i := range agents {
		objs = append(objs, agentPod(fmt.Sprintf("podwarden-%02d", i), fmt.Sprintf("node-%02d", i), true),
			&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%02d", i)}})
	}
	objs = append(objs, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-spare"}})
	c := fake.NewClientset(objs...)
	var inflight, peak atomic.Int64
	c.AddProxyReactor("pods", func(a k8stesting.Action) (bool, restclient.ResponseWrapper, error) {
		var i int
		fmt.Sscanf(a.(k8stesting.ProxyGetAction).GetName(), "podwarden-%d", &i)
		switch {
		case i%4 == 3:
			return true, hungResponse{&inflight, &peak}, nil
		case i == 2:
			return true, streamResponse{endless{}}, nil
		}
		return true, rawResponse{body: metrics}, nil
	})
	// The fake clientset ignores limit and continue; these reactors page
	// as the API server does, and record the limits asked for.
	var limits []int64
	var mu sync.Mutex
	for _, resource := range []string{"pods", "nodes"} {
		c.PrependReactor("list", resource, pagedList(t, c, resource, &mu, &limits))
	}
	var progress []status.Progress
	st, err := status.Read(t.Context(), c.CoreV1(), status.Options{
		Namespace: "podwarden-system", Selector: "app.kubernetes.io/name=podwarden",
		MetricsTimeout: time.Second, MaxInflight: maxInflight, QPS: -1, PageSize: 7,
		Progress: func(p status.Progress) { progress = append(progress, p) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Agents) != agents {
		t.Fatalf("%d agents, want %d", len(st.Agents), agents)
	}
	for i, a := range st.Agents {
		want := ""
		switch {
		case i%4 == 3:
			want = "reading /metrics through the API server proxy: no complete answer within 1s"
		case i == 2:
			want = "reading /metrics through the API server proxy: the page is larger than 4 MiB, more than an agent serves"
		}
		if a.Error != want || (want == "") != (a.Metrics != nil) {
			t.Errorf("%s: error %q metrics %v, want error %q", a.Node, a.Error, a.Metrics != nil, want)
		}
	}
	// MaxInflight at once is what a quiet machine shows; on a busy one a
	// hung read may time out before the last worker reaches its own.
	if p := peak.Load(); p < 2 || p > maxInflight {
		t.Errorf("hung agents read %d at once, want 2 to MaxInflight (%d)", p, maxInflight)
	}
	if strings.Join(st.NodesWithoutAgent, ",") != "node-spare" {
		t.Errorf("nodes without agent %v", st.NodesWithoutAgent)
	}
	if len(limits) < 2*(agents/7) {
		t.Errorf("lists asked for %d pages (limits %v), want pages of 7", len(limits), limits)
	}
	for _, l := range limits {
		if l != 7 {
			t.Errorf("a list asked for limit %d, want 7", l)
		}
	}
	if len(progress) != agents || progress[agents-1] != (status.Progress{Done: agents, Unreadable: agents/4 + 1, Total: agents}) {
		t.Errorf("progress %d calls, last %+v", len(progress), progress[len(progress)-1])
	}
}

type streamResponse struct{ r io.Reader }

func (s streamResponse) DoRaw(context.Context) ([]byte, error) { return io.ReadAll(s.r) }
func (s streamResponse) Stream(context.Context) (io.ReadCloser, error) {
	return io.NopCloser(s.r), nil
}

// pagedList answers a list with at most limit items and a continue token
// (the index of the next item), as the API server does.
func pagedList(t *testing.T, c *fake.Clientset, resource string, mu *sync.Mutex, limits *[]int64) k8stesting.ReactionFunc {
	return func(a k8stesting.Action) (bool, runtime.Object, error) {
		opts := a.(k8stesting.ListActionImpl).ListOptions
		mu.Lock()
		*limits = append(*limits, opts.Limit)
		mu.Unlock()
		from, _ := strconv.Atoi(opts.Continue)
		gvr := corev1.SchemeGroupVersion.WithResource(resource)
		all, err := c.Tracker().List(gvr, corev1.SchemeGroupVersion.WithKind(map[string]string{"pods": "Pod", "nodes": "Node"}[resource]), a.GetNamespace())
		if err != nil {
			t.Fatal(err)
		}
		var items []runtime.Object
		_ = meta.EachListItem(all, func(o runtime.Object) error {
			items = append(items, o)
			return nil
		})
		to := min(len(items), from+int(opts.Limit))
		next := ""
		if to < len(items) {
			next = strconv.Itoa(to)
		}
		switch resource {
		case "pods":
			l := &corev1.PodList{ListMeta: metav1.ListMeta{Continue: next}}
			for _, o := range items[from:to] {
				l.Items = append(l.Items, *o.(*corev1.Pod))
			}
			return true, l, nil
		default:
			l := &corev1.NodeList{ListMeta: metav1.ListMeta{Continue: next}}
			for _, o := range items[from:to] {
				l.Items = append(l.Items, *o.(*corev1.Node))
			}
			return true, l, nil
		}
	}
}
