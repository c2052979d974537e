package status

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/pager"
	"k8s.io/client-go/transport"
	"k8s.io/client-go/util/flowcontrol"
)

// Defaults of Options, chosen for one read of every agent of a cluster of
// up to 5,000 nodes (docs/kubernetes.md has what they cost there).
const (
	DefaultMetricsTimeout = 5 * time.Second
	// A hung agent holds a slot for the whole timeout, so the hung agents
	// cost timeout/DefaultMaxInflight each rather than adding up.
	DefaultMaxInflight = 64
	// The pod proxy is a long-running request to the API server: API
	// Priority and Fairness does not queue it, so this client-side pace
	// is what bounds its cost to the API server.
	DefaultQPS   = 200
	DefaultBurst = 100
	// The pager's and kubectl's page size.
	DefaultPageSize = 500
	// MaxMetricsBytes caps one agent's /metrics page. An agent with 300
	// protected containers serves well under 1 MiB; anything that answers
	// on an agent pod's IP could otherwise make status hold gigabytes, a
	// page per inflight read.
	MaxMetricsBytes = 4 << 20
)

// DefaultMetricsPort is used when an agent pod has no port named "metrics".
const DefaultMetricsPort = "9808"

// Options select the agents and bound the work.
type Options struct {
	Namespace string // of the DaemonSet
	Selector  string // label selector of its pods
	// MetricsTimeout bounds each agent's /metrics read, counted from when
	// its request is sent, not from when it was queued (default 5s).
	MetricsTimeout time.Duration
	// MaxInflight is how many agents are read at once (default 64).
	MaxInflight int
	// QPS and Burst pace the start of agent reads (default 200/s, burst
	// 100); QPS < 0 does not pace them. The lists are not paced: they are
	// a few pages read one after the other.
	QPS   float64
	Burst int
	// PageSize is the limit of each page of the pod and node lists
	// (default 500).
	PageSize int64
	// Progress, if set, is called after each agent is read, never from two
	// goroutines at once.
	Progress func(Progress)
}

// Progress counts the agents read so far.
type Progress struct {
	Done, Unreadable, Total int
}

func (o Options) withDefaults() Options {
	if o.MetricsTimeout <= 0 {
		o.MetricsTimeout = DefaultMetricsTimeout
	}
	if o.MaxInflight <= 0 {
		o.MaxInflight = DefaultMaxInflight
	}
	if o.QPS == 0 {
		o.QPS = DefaultQPS
	}
	if o.Burst <= 0 {
		o.Burst = DefaultBurst
	}
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	return o
}

// ClientConfig returns a copy of cfg for Read's client. client-go's own
// rate limit is off: its default (5/s, burst 10) made a 1,000-node read
// take 200 s, and a read's timeout ran while it waited in that queue; Read
// paces agent reads itself, before each read's deadline starts. Bodies
// from the pod proxy are capped at MaxMetricsBytes here, at the transport,
// because client-go reads an error response's body whole.
func ClientConfig(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst, c.RateLimiter = -1, 0, nil
	c.WrapTransport = transport.Wrappers(c.WrapTransport, func(rt http.RoundTripper) http.RoundTripper {
		return capProxyBodies{rt}
	})
	return c
}

type capProxyBodies struct{ next http.RoundTripper }

func (c capProxyBodies) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err == nil && resp.Body != nil && strings.Contains(req.URL.Path, "/proxy/") {
		resp.Body = &cappedBody{ReadCloser: resp.Body, left: MaxMetricsBytes}
	}
	return resp, err
}

var errPageTooLarge = fmt.Errorf("the page is larger than %d MiB, more than an agent serves", MaxMetricsBytes>>20)

type cappedBody struct {
	io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a page of exactly the cap from a larger one.
		var one [1]byte
		n, err := b.ReadCloser.Read(one[:])
		if n > 0 {
			return 0, errPageTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// agentPod is what Read keeps of an agent pod while the list pages go.
type agentPod struct {
	agent         Agent
	namespace, ip string
	port          string
	// reader is the ServiceAccount whose token the agent takes, "" when
	// it takes none.
	reader string
}

// Read lists the agent pods and reads each one's /metrics through
// the API server's pod proxy (pods/proxy, so the user needs no network
// path to the nodes). Listing the pods must work; everything else is
// reported per agent or as a warning.
func Read(ctx context.Context, client typedcorev1.CoreV1Interface, o Options) (Cluster, error) {
	o = o.withDefaults()
	var pods []agentPod
	err := eachItem(ctx, o.PageSize, func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		opts.LabelSelector = o.Selector
		return client.Pods(o.Namespace).List(ctx, opts)
	}, func(obj runtime.Object) {
		if pod, ok := obj.(*corev1.Pod); ok {
			pods = append(pods, agentPod{agent: agentOf(pod), namespace: pod.Namespace, ip: pod.Status.PodIP, port: metricsPort(pod), reader: metricsReader(pod)})
		}
	})
	if err != nil {
		return Cluster{}, fmt.Errorf("listing agent pods in %s (%s): %w", o.Namespace, o.Selector, err)
	}
	st := Cluster{Namespace: o.Namespace, Agents: make([]Agent, len(pods)), NodesWithoutAgent: []string{}}
	readAll(ctx, client, o, pods)
	if err := ctx.Err(); err != nil {
		return Cluster{}, fmt.Errorf("reading the agents' metrics: %w", err)
	}
	for i := range pods {
		st.Agents[i] = pods[i].agent
	}
	slices.SortFunc(st.Agents, func(a, b Agent) int { return strings.Compare(a.Node+"\x00"+a.Pod, b.Node+"\x00"+b.Pod) })

	have := map[string]bool{}
	for _, a := range st.Agents {
		have[a.Node] = true
	}
	err = eachItem(ctx, o.PageSize, func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		return client.Nodes().List(ctx, opts)
	}, func(obj runtime.Object) {
		if n, ok := obj.(*corev1.Node); ok && !have[n.Name] {
			st.NodesWithoutAgent = append(st.NodesWithoutAgent, n.Name)
		}
	})
	if err != nil {
		st.NodesWithoutAgent = []string{}
		st.Warnings = append(st.Warnings, fmt.Sprintf("cannot list nodes, so nodes without an agent are not shown: %v", err))
		return st, nil
	}
	slices.Sort(st.NodesWithoutAgent)
	return st, nil
}

// eachItem lists in pages of pageSize (limit/continue), so neither the
// API server nor status holds a 5,000-item list at once; only what each
// keeps of an item stays.
func eachItem(ctx context.Context, pageSize int64, list pager.ListPageFunc, each func(runtime.Object)) error {
	p := pager.New(list)
	p.PageSize = pageSize
	return p.EachListItem(ctx, metav1.ListOptions{}, func(obj runtime.Object) error {
		each(obj)
		return nil
	})
}

// readAll reads every agent with at most o.MaxInflight reads at once,
// started at most o.QPS a second, and records each one's metrics or error
// in pods.
func readAll(ctx context.Context, client typedcorev1.CoreV1Interface, o Options, pods []agentPod) {
	limiter := flowcontrol.NewFakeAlwaysRateLimiter()
	if o.QPS > 0 {
		limiter = flowcontrol.NewTokenBucketRateLimiter(float32(o.QPS), o.Burst)
	}
	toks := newTokens(client)
	var mu sync.Mutex
	progress := Progress{Total: len(pods)}
	jobs := make(chan *agentPod)
	var wg sync.WaitGroup
	for range min(o.MaxInflight, len(pods)) {
		wg.Go(func() {
			for p := range jobs {
				m, err := readAgent(ctx, client, toks, limiter, p, o.MetricsTimeout)
				if err != nil {
					p.agent.Error = err.Error()
				} else {
					p.agent.Metrics = &m
				}
				mu.Lock()
				progress.Done++
				if err != nil {
					progress.Unreadable++
				}
				if o.Progress != nil {
					o.Progress(progress)
				}
				mu.Unlock()
			}
		})
	}
	for i := range pods {
		jobs <- &pods[i]
	}
	close(jobs)
	wg.Wait()
}

func readAgent(ctx context.Context, client typedcorev1.CoreV1Interface, toks *tokens, limiter flowcontrol.RateLimiter, p *agentPod, timeout time.Duration) (AgentMetrics, error) {
	if p.ip == "" {
		// The proxy would only say "address not allowed".
		return AgentMetrics{}, fmt.Errorf("pod has no IP yet (phase %s): not running", p.agent.Phase)
	}
	// The wait is outside the read's deadline: a read that waited its
	// turn still gets its whole timeout.
	if err := limiter.Wait(ctx); err != nil {
		return AgentMetrics{}, fmt.Errorf("not read: %w", err)
	}
	var token string
	if p.reader != "" {
		// Minted before the read's deadline starts, once per account.
		t, err := toks.get(ctx, p.namespace, p.reader)
		if err != nil {
			return AgentMetrics{}, fmt.Errorf("not read: %w", err)
		}
		token = t
	}
	return readMetrics(ctx, client, p, token, timeout)
}

// readMetrics is the one request status makes to an agent; token, if set,
// goes in the header the agent checks scrapes by.
func readMetrics(ctx context.Context, client typedcorev1.CoreV1Interface, p *agentPod, token string, timeout time.Duration) (AgentMetrics, error) {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fail := func(err error) (AgentMetrics, error) {
		switch {
		case errors.Is(err, errPageTooLarge):
			err = errPageTooLarge
		case rctx.Err() != nil && ctx.Err() == nil:
			// client-go's text here is the whole proxy URL and
			// "context deadline exceeded".
			err = fmt.Errorf("no complete answer within %s", timeout)
		}
		return AgentMetrics{}, fmt.Errorf("reading /metrics through the API server proxy: %s", clip(err.Error()))
	}
	var req interface {
		Stream(context.Context) (io.ReadCloser, error)
	} = client.Pods(p.namespace).ProxyGet("http", p.agent.Pod, p.port, "metrics", nil)
	if token != "" {
		// ProxyGet sets no headers: the same pods/proxy request, by hand.
		req = client.RESTClient().Get().Namespace(p.namespace).Resource("pods").
			Name(utilnet.JoinSchemeNamePort("http", p.agent.Pod, p.port)).SubResource("proxy").Suffix("metrics").
			SetHeader(tokenHeader, "Bearer "+token)
	}
	body, err := req.Stream(rctx)
	if err != nil {
		return fail(err)
	}
	defer body.Close()
	// The transport caps proxy bodies (ClientConfig); this cap is for
	// clients built without it.
	b, err := io.ReadAll(&cappedBody{ReadCloser: body, left: MaxMetricsBytes})
	if err != nil {
		return fail(err)
	}
	return ParseMetrics(bytes.NewReader(b))
}

// clip shortens an error: with a 5xx the proxy passes on whatever the
// agent's port answered, which may be a whole page.
func clip(s string) string {
	const max = 300
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "") + "... (" + strconv.Itoa(len(s)-max) + " more bytes)"
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
