package nodetest

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/rest"
)

// The interactive pods. nb is Guaranteed with a limit above what the node
// has free (about 1.4 GiB of the guest's 1.9 GiB after boot), so its hog
// ends in a node OOM; lab's limit is small, so its hog hits the container
// limit. ks is a Guaranteed pod in kube-system, which the chart's policy
// excludes. Their requests and the agent's fit the node's allocatable
// memory (the kubelet refuses the pod otherwise: OutOfmemory).
const (
	nbCPU, nbMem   = "1", "1600Mi"
	labCPU, labMem = "250m", "128Mi"
	// The entrypoint measures its own protection: uptime at start, then
	// uptime when its oom_score_adj reads 900 (guest clock, 10 ms steps).
	latencyScript = `read t0 _ < /proc/uptime; read a0 < /proc/self/oom_score_adj; a=$a0; i=0
while [ "$a" != 900 ] && [ $i -lt 6000 ]; do usleep 10000; i=$((i+1)); read a < /proc/self/oom_score_adj; done
read t1 _ < /proc/uptime; echo "start=$t0 first=$a0 protected=$t1 adj=$a"
sleep 1000000 & wait`
	idleScript = "sleep 1000000 & wait"
	// The hog: reads /dev/zero into one growing line until the OOM killer
	// ends it. Its comm is "hog", what the kernel log and Events name.
	hogScript = "exec -a tail /bin/hog /dev/zero"
)

// agentValues are the values every install gives: none. The release's
// chart pins its image by digest, so the test sets nothing a user would
// not (issue 22).
var agentValues map[string]any

// markKernel writes a marker into the guest's kernel log; kernelSince
// returns what the kernel logged after it.
func markKernel(ctx context.Context, t *testing.T, n *Node, mark string) {
	t.Helper()
	if _, err := n.Sh(ctx, "echo 'PWMARK "+mark+"' > /dev/kmsg"); err != nil {
		t.Fatal(err)
	}
}

func kernelSince(ctx context.Context, n *Node, mark string) (string, error) {
	return n.Sh(ctx, "dmesg | sed -n '/PWMARK "+mark+"$/,$p'")
}

var killedRE = regexp.MustCompile(`(Memory cgroup out of memory|Out of memory): Killed process (\d+) \(([^)]*)\)`)

// kills lists "comm(pid)" of every "Killed process" line, in order, with
// "memcg:" before container-limit kills.
func kills(klog string) []string {
	var out []string
	for _, m := range killedRE.FindAllStringSubmatch(klog, -1) {
		k := m[3]
		if strings.HasPrefix(m[1], "Memory cgroup") {
			k = "memcg:" + k
		}
		out = append(out, k)
	}
	return out
}

func alive(ctx context.Context, n *Node, comm string) bool {
	return pidOf(ctx, n, comm) != ""
}

// pidOf lists the pids whose /proc/PID/comm is comm (busybox pidof does
// not match a comm of the full 15 bytes, such as systemd-network).
func pidOf(ctx context.Context, n *Node, comm string) string {
	out, _ := n.Sh(ctx, "sh /pw/service.sh pids "+comm)
	return strings.TrimSpace(out)
}

// nodeWatch records, once a second, whether the Node was Ready and its
// Lease's renew time.
type nodeWatch struct {
	mu        sync.Mutex
	notReady  []string
	renewals  []time.Time
	cancel    context.CancelFunc
	done      chan struct{}
	lastError error
}

func (c *cluster) watchNode(ctx context.Context, name string) *nodeWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &nodeWatch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			nd, err := c.admin.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			l, lerr := c.admin.CoordinationV1().Leases("kube-node-lease").Get(ctx, name, metav1.GetOptions{})
			w.mu.Lock()
			if err == nil {
				for _, cnd := range nd.Status.Conditions {
					if cnd.Type == corev1.NodeReady && cnd.Status != corev1.ConditionTrue {
						w.notReady = append(w.notReady, fmt.Sprintf("%s %s: %s", time.Now().Format("15:04:05"), cnd.Status, cnd.Message))
					}
				}
			} else if ctx.Err() == nil {
				w.lastError = err
			}
			if lerr == nil && l.Spec.RenewTime != nil {
				if len(w.renewals) == 0 || !w.renewals[len(w.renewals)-1].Equal(l.Spec.RenewTime.Time) {
					w.renewals = append(w.renewals, l.Spec.RenewTime.Time)
				}
			}
			w.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	return w
}

func (w *nodeWatch) stop() (notReady []string, renewals []time.Time) {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.notReady, w.renewals
}

func (w *nodeWatch) renewedAfter(ts time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.renewals) > 0 && w.renewals[len(w.renewals)-1].After(ts)
}

// kernelOnly opts the pod out of the chart's early action
// (policy.preempt), as a user would with the documented annotation:
// scenarios 3 and 4 prove the kernel's OOM path (one process dies, the
// Event and the metric follow from the kernel's report), which early
// action would otherwise race. Scenario 4b proves early action.
func kernelOnly(p *corev1.Pod) *corev1.Pod {
	p.Annotations = map[string]string{"podwarden.dev/preempt": "off"}
	return p
}

// runHog starts the hog in the pod by exec, as a user at a terminal would,
// and returns when the exec ends (the kernel, or podwarden's early
// action, ended the hog).
func (c *cluster) runHog(ctx context.Context, t *testing.T, ns, pod string) time.Duration {
	t.Helper()
	return c.runScript(ctx, t, ns, pod, hogScript)
}

// runScript is runHog with another hog.
func (c *cluster) runScript(ctx context.Context, t *testing.T, ns, pod, script string) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 8*time.Minute)
	defer cancel()
	start := time.Now()
	_, stderr, err := kubectlExec(ctx, c.adminCfg, c.admin, ns, pod, "main", "sh", "-c", script)
	if ctx.Err() != nil {
		t.Fatalf("the hog in %s/%s was not killed within 8 minutes", ns, pod)
	}
	took := time.Since(start).Round(100 * time.Millisecond)
	t.Logf("hog in %s/%s ended after %s: %v %s", ns, pod, took, err, strings.TrimSpace(stderr))
	return took
}

// agentPod returns the chart's agent pod on node once it is Ready.
func (c *cluster) agentPod(ctx context.Context, t *testing.T, node string, containers int) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	err := poll(ctx, 5*time.Minute, time.Second, func(ctx context.Context) (bool, error) {
		pods, err := c.admin.CoreV1().Pods(agentNS).List(ctx, metav1.ListOptions{
			LabelSelector: "app.kubernetes.io/name=" + agentName, FieldSelector: "spec.nodeName=" + node})
		if err != nil {
			return false, err
		}
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.DeletionTimestamp != nil || len(p.Spec.Containers) != containers {
				continue
			}
			pod = p
			if p.Status.Phase != corev1.PodRunning {
				return false, fmt.Errorf("%s: phase %s %s %s", p.Name, p.Status.Phase, p.Status.Reason, waitingReasons(p))
			}
			for _, cnd := range p.Status.Conditions {
				if cnd.Type == corev1.PodReady && cnd.Status == corev1.ConditionTrue {
					return true, nil
				}
			}
			return false, fmt.Errorf("%s not Ready %s", p.Name, waitingReasons(p))
		}
		return false, fmt.Errorf("no agent pod with %d containers on %s", containers, node)
	})
	if err != nil {
		t.Fatalf("agent on %s: %v", node, err)
	}
	return pod
}

// metrics reads the agent's /metrics over HTTP through the API server's
// pod proxy (the path `podwarden status` takes), with a token of the
// chart's metrics-reader ServiceAccount when the agent checks scrapes
// (metrics.auth kubernetes, the chart's default): the proxy drops the
// caller's Authorization header and forwards X-Podwarden-Authorization.
func (c *cluster) metrics(ctx context.Context, pod string) (string, error) {
	b, err := c.metricsRequest(ctx, pod, true).DoRaw(ctx)
	return string(b), err
}

func (c *cluster) metricsRequest(ctx context.Context, pod string, withToken bool) *rest.Request {
	req := c.admin.CoreV1().RESTClient().Get().Namespace(agentNS).Resource("pods").
		Name(utilnet.JoinSchemeNamePort("http", pod, "9808")).SubResource("proxy").Suffix("metrics")
	if !withToken {
		return req
	}
	p, err := c.admin.CoreV1().Pods(agentNS).Get(ctx, pod, metav1.GetOptions{})
	if err != nil || p.Annotations["podwarden.dev/metrics-auth"] != "kubernetes" {
		return req
	}
	exp := int64(600)
	tr, err := c.admin.CoreV1().ServiceAccounts(agentNS).CreateToken(ctx, p.Annotations["podwarden.dev/metrics-reader"],
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		return req
	}
	return req.SetHeader("X-Podwarden-Authorization", "Bearer "+tr.Status.Token)
}

// metricValue sums the samples of name whose labels contain every part.
func metricValue(text, name string, parts ...string) (float64, bool) {
	var sum float64
	found := false
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		ok := true
		for _, p := range parts {
			if !strings.Contains(l, p) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
			found = true
		}
	}
	return sum, found
}

func (c *cluster) view(ctx context.Context, t *testing.T, n *Node, ns, name string) (ContainerView, *corev1.Pod) {
	t.Helper()
	p, err := c.admin.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := viewContainer(ctx, n, containerID(p, "main"))
	if err != nil {
		t.Fatalf("%s/%s in the guest: %v", ns, name, err)
	}
	return v, p
}

func restarts(p *corev1.Pod) int32 {
	var r int32
	for _, cs := range p.Status.ContainerStatuses {
		r += cs.RestartCount
	}
	return r
}

// hogRun is a hog started by exec in a pod while the node is watched, and
// what must outlive it: the node's daemons (same pids), the pod's other
// processes, the pod without a restart, the agent pod.
type hogRun struct {
	ns, name string
	daemons  map[string]string
	before   ContainerView
	pod      *corev1.Pod
	agent    *corev1.Pod
	// klog is the kernel log from the start of the run.
	klog string
	// renewals of the node's Lease while it was watched, and the times
	// it was seen not Ready.
	renewals []time.Time
	notReady []string
	// took is how long the hog lived.
	took time.Duration
}

// runWatchedHog runs the hog script in ns/name (see runHog), watching the
// node until its Lease renewed after the hog ended and one more status
// period, and fails t if the node left Ready.
func (c *cluster) runWatchedHog(ctx context.Context, t *testing.T, n *Node, ns, name, mark, script string) *hogRun {
	t.Helper()
	r := &hogRun{ns: ns, name: name, daemons: map[string]string{}}
	r.before, r.pod = c.view(ctx, t, n, ns, name)
	r.agent = c.agentPod(ctx, t, nodeA, 1)
	for _, d := range []string{"kubelet", "containerd", "sshd", "systemd-network", "podwarden"} {
		if r.daemons[d] = pidOf(ctx, n, d); r.daemons[d] == "" {
			t.Fatalf("%s is not running before the hog", d)
		}
	}
	markKernel(ctx, t, n, mark)
	w := c.watchNode(ctx, nodeA)
	r.took = c.runScript(ctx, t, ns, name, script)
	endAt := time.Now()
	// The Lease keeps renewing after the hog (every 10 s by default).
	if err := poll(ctx, 2*time.Minute, time.Second, func(context.Context) (bool, error) {
		return w.renewedAfter(endAt), nil
	}); err != nil {
		t.Errorf("the node's Lease was not renewed after the hog ended: %v", err)
	}
	time.Sleep(10 * time.Second) // one more node status period watched
	r.notReady, r.renewals = w.stop()
	if len(r.notReady) > 0 {
		t.Errorf("the node left Ready: %v", r.notReady)
	}
	var err error
	if r.klog, err = kernelSince(ctx, n, mark); err != nil {
		t.Fatal(err)
	}
	return r
}

// checkSurvivors fails t for whatever died or restarted with the hog.
func (c *cluster) checkSurvivors(ctx context.Context, t *testing.T, n *Node, r *hogRun) {
	t.Helper()
	for d, pid := range r.daemons {
		if got := pidOf(ctx, n, d); got != pid {
			t.Errorf("%s: pid %q before the hog, %q after", d, pid, got)
		}
	}
	after, podAfter := c.view(ctx, t, n, r.ns, r.name)
	for _, p := range r.before.Procs {
		if !slices.ContainsFunc(after.Procs, func(q GuestProc) bool { return q.PID == p.PID }) {
			t.Errorf("%s's %s[%d] died with the hog", r.name, p.Comm, p.PID)
		}
	}
	if podAfter.Status.Phase != corev1.PodRunning || restarts(podAfter) != 0 || restarts(r.pod) != 0 {
		t.Errorf("%s: phase %s restarts %d, want Running with 0", r.name, podAfter.Status.Phase, restarts(podAfter))
	}
	if a2 := c.agentPod(ctx, t, nodeA, 1); a2.Name != r.agent.Name || restarts(a2) != restarts(r.agent) {
		t.Errorf("the agent pod restarted: %s restarts %d -> %s %d", r.agent.Name, restarts(r.agent), a2.Name, restarts(a2))
	}
}
