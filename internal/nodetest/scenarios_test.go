package nodetest

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

var agentValues = map[string]any{"image": map[string]any{"repository": AgentRepo, "tag": AgentTag}}

// withValues merges more values over the image override (one level deep).
func withValues(extra map[string]any) map[string]any {
	v := map[string]any{}
	for k, x := range agentValues {
		v[k] = x
	}
	for k, x := range extra {
		v[k] = x
	}
	return v
}

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
func (c *cluster) runHog(ctx context.Context, t *testing.T, ns, pod string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 8*time.Minute)
	defer cancel()
	start := time.Now()
	_, stderr, err := kubectlExec(ctx, c.adminCfg, c.admin, ns, pod, "main", "sh", "-c", hogScript)
	if ctx.Err() != nil {
		t.Fatalf("the hog in %s/%s was not killed within 8 minutes", ns, pod)
	}
	t.Logf("hog in %s/%s ended after %s: %v %s", ns, pod, time.Since(start).Round(100*time.Millisecond), err, strings.TrimSpace(stderr))
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
// pod proxy (the path `podwarden status` takes).
func (c *cluster) metrics(ctx context.Context, pod string) (string, error) {
	b, err := c.admin.CoreV1().Pods(agentNS).ProxyGet("http", pod, "9808", "/metrics", nil).DoRaw(ctx)
	return string(b), err
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

// Scenario 1: as Kubernetes ships it. A node OOM from a Guaranteed pod
// kills the host daemons first (their adj 0 beats the pod's -997), then
// the whole container through memory.oom.group=1.
func scenarioWithout(t *testing.T, c *cluster, n *Node) {
	ctx := t.Context()
	createPod(ctx, t, c.admin, podSpec(usersNS, "nb", nodeA, idleScript, nbCPU, nbMem))
	start := time.Now()
	if _, err := waitRunning(ctx, c.admin, usersNS, "nb", 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	timing("scenario 1: Guaranteed pod Running %s after create", time.Since(start).Round(100*time.Millisecond))
	v, pod := c.view(ctx, t, n, usersNS, "nb")
	t.Logf("as kubelet set it: %s", v)
	if v.OOMGroup != "1" || len(v.Procs) == 0 || slices.ContainsFunc(v.Procs, func(p GuestProc) bool { return p.Adj != -997 }) {
		t.Errorf("want oom.group 1 and adj -997 from kubelet: %s", v)
	}
	markKernel(ctx, t, n, "s1")
	w := c.watchNode(ctx, nodeA)
	c.runHog(ctx, t, usersNS, "nb")
	var restarted *corev1.Pod
	if err := poll(ctx, 3*time.Minute, time.Second, func(ctx context.Context) (bool, error) {
		p, err := c.admin.CoreV1().Pods(usersNS).Get(ctx, "nb", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		restarted = p
		return restarts(p) > restarts(pod), nil
	}); err != nil {
		t.Errorf("the container was not restarted (memory.oom.group should have killed all of it): %v", err)
	}
	klog, err := kernelSince(ctx, n, "s1")
	if err != nil {
		t.Fatal(err)
	}
	k := kills(klog)
	t.Logf("REPORT scenario 1: kernel killed, in order: %v", k)
	group := strings.Contains(klog, "are going to be killed due to memory.oom.group set")
	iSshd, iNet, iHog := slices.Index(k, "sshd"), slices.Index(k, "systemd-network"), slices.Index(k, "hog")
	if iSshd < 0 || iNet < 0 || iHog < 0 || iSshd > iHog || iNet > iHog {
		t.Errorf("want sshd and systemd-network killed before the hog, got %v", k)
	}
	if !group {
		t.Error("no memory.oom.group kill of the container in the kernel log")
	}
	for _, d := range []string{"sshd", "systemd-network"} {
		if alive(ctx, n, d) {
			t.Errorf("%s survived", d)
		}
	}
	if restarted != nil {
		for _, cs := range restarted.Status.ContainerStatuses {
			if term := cs.LastTerminationState.Terminated; term != nil {
				t.Logf("REPORT scenario 1: container %s restartCount %d, last terminated %s exit %d", cs.Name, cs.RestartCount, term.Reason, term.ExitCode)
			}
		}
	}
	// Give the kubelet a status period to report what the OOM did to it.
	time.Sleep(15 * time.Second)
	notReady, renewals := w.stop()
	t.Logf("REPORT scenario 1: kubelet alive=%v containerd alive=%v; NodeReady not True at %d polls %v; lease renewed %d times",
		alive(ctx, n, "kubelet"), alive(ctx, n, "containerd"), len(notReady), notReady, len(renewals))
	t.Logf("REPORT scenario 1: group kill line: %v", group)

	// Put the node back the way an admin would find it after a reboot:
	// daemons running, the crashed pod gone.
	if err := deletePod(ctx, c.admin, usersNS, "nb"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Sh(ctx, "sh /pw/service.sh standins"); err != nil {
		t.Fatal(err)
	}
}

// Scenario 2: the chart installed with Helm, only the image overridden.
func scenarioChart(t *testing.T, c *cluster, n *Node) {
	ctx := t.Context()
	start := time.Now()
	if err := c.helm.install(ctx, t, release, agentValues); err != nil {
		t.Fatalf("helm install: %v", err)
	}
	agent := c.agentPod(ctx, t, nodeA, 1)
	timing("scenario 2: agent pod Ready %s after helm install", time.Since(start).Round(100*time.Millisecond))
	if sa := agent.Spec.ServiceAccountName; sa != release {
		t.Errorf("agent runs as ServiceAccount %q, want the chart's %q", sa, release)
	}

	start = time.Now()
	createPod(ctx, t, c.admin, kernelOnly(podSpec(usersNS, "nb", nodeA, latencyScript, nbCPU, nbMem)))
	createPod(ctx, t, c.admin, kernelOnly(podSpec(usersNS, "lab", nodeA, idleScript, labCPU, labMem)))
	createPod(ctx, t, c.admin, podSpec("kube-system", "ks", nodeA, idleScript, labCPU, "32Mi"))
	for _, p := range [][2]string{{usersNS, "nb"}, {usersNS, "lab"}, {"kube-system", "ks"}} {
		if _, err := waitRunning(ctx, c.admin, p[0], p[1], 5*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	timing("scenario 2: three pods Running %s after create", time.Since(start).Round(100*time.Millisecond))
	for _, name := range []string{"nb", "lab"} {
		var v ContainerView
		if err := poll(ctx, 2*time.Minute, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
			v, _ = c.view(ctx, t, n, usersNS, name)
			return v.protected(900), nil
		}); err != nil {
			t.Errorf("%s not protected: %s", name, v)
		}
		t.Logf("%s: %s", name, v)
	}
	// Latency from container start, as the container measured it.
	var logs string
	if err := poll(ctx, time.Minute, time.Second, func(ctx context.Context) (bool, error) {
		var err error
		logs, err = podLogs(ctx, c.admin, usersNS, "nb", "main")
		return strings.Contains(logs, "protected="), err
	}); err != nil {
		t.Errorf("nb's log: %v", err)
	}
	var t0, t1 float64
	var first, final int
	if _, err := fmt.Sscanf(strings.TrimSpace(logs), "start=%g first=%d protected=%g adj=%d", &t0, &first, &t1, &final); err != nil || final != 900 {
		t.Errorf("nb's entrypoint: %q (%v)", logs, err)
	} else {
		timing("scenario 2: a new pod's first process read adj %d at start and 900 after %.0f ms (agent without NRI)", first, (t1-t0)*1000)
	}

	// A process started by kubectl exec gets the container's -997 from
	// the runtime; the agent raises it.
	out, _, err := kubectlExec(ctx, c.adminCfg, c.admin, usersNS, "nb", "main", "sh", "-c",
		`read a0 < /proc/self/oom_score_adj; a=$a0; i=0
while [ "$a" != 900 ] && [ $i -lt 3000 ]; do usleep 10000; i=$((i+1)); read a < /proc/self/oom_score_adj; done
echo "first=$a0 final=$a waited_ms=$((i*10))"`)
	if err != nil || !strings.Contains(out, "final=900") {
		t.Errorf("kubectl exec process: %q %v", out, err)
	}
	timing("scenario 2: kubectl exec process: %s", strings.TrimSpace(out))

	// The non-target pod keeps what kubelet set, past a full reconcile
	// period (the policy's 10 s) after the agent became Ready.
	time.Sleep(time.Until(start.Add(15 * time.Second)))
	ks, _ := c.view(ctx, t, n, "kube-system", "ks")
	if ks.OOMGroup != "1" || slices.ContainsFunc(ks.Procs, func(p GuestProc) bool { return p.Adj != -997 }) {
		t.Errorf("the kube-system pod was changed: %s", ks)
	}
	t.Logf("ks (not a target): %s", ks)
}

// syslogProbe answers issue 16's open question on this node: may a
// container with CAP_SYSLOG, seccomp RuntimeDefault and containerd's
// default AppArmor profile read the kernel log with syslog(2) READ_ALL
// (busybox dmesg is klogctl(3))? A control pod without CAP_SYSLOG must be
// refused (the node has kernel.dmesg_restrict=1).
func (c *cluster) syslogProbe(ctx context.Context, t *testing.T, n *Node) {
	t.Helper()
	script := `dmesg >/dev/null 2>/tmp/err; rc=$?; read aa < /proc/self/attr/current
echo "rc=$rc apparmor=$aa seccomp=$(grep '^Seccomp:' /proc/self/status | tr -d '\t ') err=$(cat /tmp/err)"
sleep 1000000`
	f, ro := false, true
	for name, caps := range map[string][]corev1.Capability{"syslog-probe": {"SYSLOG"}, "syslog-control": nil} {
		p := podSpec("kube-system", name, nodeA, script, "", "")
		p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{
			RunAsUser: new(int64), Privileged: &f, AllowPrivilegeEscalation: &f, ReadOnlyRootFilesystem: &ro,
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: caps},
		}
		p.Spec.Volumes = []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}}
		createPod(ctx, t, c.admin, p)
	}
	for _, name := range []string{"syslog-probe", "syslog-control"} {
		if _, err := waitRunning(ctx, c.admin, "kube-system", name, 3*time.Minute); err != nil {
			t.Errorf("%v", err)
			continue
		}
		var logs string
		_ = poll(ctx, time.Minute, time.Second, func(ctx context.Context) (bool, error) {
			var err error
			logs, err = podLogs(ctx, c.admin, "kube-system", name, "main")
			return strings.Contains(logs, "rc="), err
		})
		t.Logf("REPORT syslog(2) READ_ALL, %s (%s): %s", name, map[string]string{"syslog-probe": "CAP_SYSLOG", "syslog-control": "no capabilities"}[name], strings.TrimSpace(logs))
		if name == "syslog-control" && !strings.Contains(logs, "rc=1") {
			t.Errorf("the control pod without CAP_SYSLOG read the kernel log: %s", logs)
		}
		if !strings.Contains(logs, "rc=") {
			t.Errorf("%s printed nothing", name)
		}
		// Node A runs AppArmor: containerd must confine a pod that asks
		// for no profile with its default one, or this probe proves
		// nothing about that profile.
		if !strings.Contains(logs, "apparmor=cri-containerd.apparmor.d") {
			t.Errorf("%s is not confined by containerd's default AppArmor profile: %s", name, logs)
		}
		_ = deletePod(ctx, c.admin, "kube-system", name)
	}
}

// Scenario 3: a container-limit OOM in an interactive pod.
func scenarioContainerLimit(t *testing.T, c *cluster, n *Node) {
	ctx := t.Context()
	c.syslogProbe(ctx, t, n)
	before, pod := c.view(ctx, t, n, usersNS, "lab")
	markKernel(ctx, t, n, "s3")
	c.runHog(ctx, t, usersNS, "lab")
	klog, err := kernelSince(ctx, n, "s3")
	if err != nil {
		t.Fatal(err)
	}
	k := kills(klog)
	t.Logf("REPORT scenario 3: kernel killed %v", k)
	if len(k) == 0 || slices.ContainsFunc(k, func(s string) bool { return s != "memcg:hog" }) {
		t.Errorf("want only the hog killed by its container's limit, got %v", k)
	}
	after, podAfter := c.view(ctx, t, n, usersNS, "lab")
	for _, p := range before.Procs {
		if !slices.ContainsFunc(after.Procs, func(q GuestProc) bool { return q.PID == p.PID }) {
			t.Errorf("%s[%d] died with the hog", p.Comm, p.PID)
		}
	}
	if podAfter.Status.Phase != corev1.PodRunning || restarts(podAfter) != restarts(pod) || restarts(podAfter) != 0 {
		t.Errorf("lab: phase %s restarts %d, want Running with 0", podAfter.Status.Phase, restarts(podAfter))
	}

	// A Warning Event on the pod naming the process.
	var ev *corev1.Event
	if err := poll(ctx, 2*time.Minute, 2*time.Second, func(ctx context.Context) (bool, error) {
		evs, err := c.admin.CoreV1().Events(usersNS).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=lab"})
		if err != nil {
			return false, err
		}
		for i := range evs.Items {
			e := &evs.Items[i]
			if e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, "hog") && e.Source.Component != "kubelet" {
				ev = e
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Errorf("no Warning Event on users/lab naming the hog: %v", err)
	} else {
		t.Logf("REPORT scenario 3: Event %s %s from %s: %s", ev.Type, ev.Reason, ev.Source.Component, ev.Message)
	}

	agent := c.agentPod(ctx, t, nodeA, 1)
	var text string
	if err := poll(ctx, time.Minute, 2*time.Second, func(ctx context.Context) (bool, error) {
		var err error
		text, err = c.metrics(ctx, agent.Name)
		v, ok := metricValue(text, "podwarden_oom_kills_total", `namespace="users"`, `pod="lab"`)
		return ok && v >= 1, err
	}); err != nil {
		t.Errorf("podwarden_oom_kills_total for users/lab: %v\n%s", err, grepLines(text, "oom_kills"))
	}

	// podwarden status on this host, as a user bound to the viewer roles.
	c.bindViewer(ctx, t)
	// out keeps the last complete run: the poll's deadline kills a run in
	// flight.
	var out []byte
	if err := poll(ctx, time.Minute, 2*time.Second, func(ctx context.Context) (bool, error) {
		cmd := exec.CommandContext(ctx, c.cliDir+"/podwarden", "status", "--kubeconfig", c.viewerKC)
		b, err := cmd.CombinedOutput()
		if err != nil {
			return false, fmt.Errorf("%v: %s", err, b)
		}
		out = b
		return statusShows(string(out), nodeA, "users/lab", true), nil
	}); err != nil {
		t.Errorf("podwarden status does not show %s, users/lab protected and its OOM: %v\n%s", nodeA, err, out)
	}
	t.Logf("REPORT scenario 3: podwarden status:\n%s", out)
}

// statusShows: the node's agent row, the pod among the protected pods and
// (with oom) an OOM row for it.
func statusShows(out, node, pod string, oom bool) bool {
	var agentRow, protected, oomRow bool
	section := ""
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case strings.HasPrefix(l, "Protected pods"):
			section = "protected"
		case strings.HasPrefix(l, "OOM kills"):
			section = "oom"
		case strings.HasPrefix(l, "NODE "), len(f) == 0:
		case section == "" && f[0] == node && len(f) > 2 && f[2] == "yes":
			agentRow = true
		case section == "protected" && f[0] == node && strings.Contains(l, pod):
			protected = true
		case section == "oom" && f[0] == node && len(f) > 1 && f[1] == pod:
			oomRow = true
		}
	}
	return agentRow && protected && (oomRow || !oom)
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// bindViewer binds group sre to the chart's viewer roles, as
// docs/kubernetes.md tells users to.
func (c *cluster) bindViewer(ctx context.Context, t *testing.T) {
	t.Helper()
	subj := []rbacv1.Subject{{Kind: "Group", Name: "sre", APIGroup: rbacv1.GroupName}}
	_, err := c.admin.RbacV1().RoleBindings(agentNS).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "sre-podwarden-viewer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: release + "-viewer"},
		Subjects:   subj}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	_, err = c.admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "sre-podwarden-node-viewer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: release + "-node-viewer"},
		Subjects:   subj}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// Scenario 4: a node OOM caused by the interactive pod, with the chart.
func scenarioNodeOOM(t *testing.T, c *cluster, n *Node) {
	ctx := t.Context()
	before, pod := c.view(ctx, t, n, usersNS, "nb")
	agent := c.agentPod(ctx, t, nodeA, 1)
	daemons := map[string]string{}
	for _, d := range []string{"kubelet", "containerd", "sshd", "systemd-network", "podwarden"} {
		daemons[d] = pidOf(ctx, n, d)
		if daemons[d] == "" {
			t.Fatalf("%s is not running before the OOM", d)
		}
	}
	markKernel(ctx, t, n, "s4")
	w := c.watchNode(ctx, nodeA)
	c.runHog(ctx, t, usersNS, "nb")
	oomAt := time.Now()
	// The Lease keeps renewing after the OOM (every 10 s by default).
	if err := poll(ctx, 2*time.Minute, time.Second, func(context.Context) (bool, error) {
		return w.renewedAfter(oomAt), nil
	}); err != nil {
		t.Errorf("the node's Lease was not renewed after the OOM: %v", err)
	}
	time.Sleep(10 * time.Second) // one more node status period watched
	notReady, renewals := w.stop()
	if len(notReady) > 0 {
		t.Errorf("the node left Ready: %v", notReady)
	}
	klog, err := kernelSince(ctx, n, "s4")
	if err != nil {
		t.Fatal(err)
	}
	k := kills(klog)
	t.Logf("REPORT scenario 4: kernel killed %v; lease renewed %d times while watched; NodeReady never left True: %v", k, len(renewals), len(notReady) == 0)
	if len(k) == 0 || slices.ContainsFunc(k, func(s string) bool { return s != "hog" }) {
		t.Errorf("want only the hog killed by the node OOM, got %v", k)
	}
	if strings.Contains(klog, "memory.oom.group") {
		t.Error("a memory.oom.group kill happened")
	}
	for d, pid := range daemons {
		if got := pidOf(ctx, n, d); got != pid {
			t.Errorf("%s: pid %q before the OOM, %q after", d, pid, got)
		}
	}
	after, podAfter := c.view(ctx, t, n, usersNS, "nb")
	for _, p := range before.Procs {
		if !slices.ContainsFunc(after.Procs, func(q GuestProc) bool { return q.PID == p.PID }) {
			t.Errorf("nb's %s[%d] died with the hog", p.Comm, p.PID)
		}
	}
	if podAfter.Status.Phase != corev1.PodRunning || restarts(podAfter) != 0 || restarts(pod) != 0 {
		t.Errorf("nb: phase %s restarts %d", podAfter.Status.Phase, restarts(podAfter))
	}
	if a2 := c.agentPod(ctx, t, nodeA, 1); a2.Name != agent.Name || restarts(a2) != restarts(agent) {
		t.Errorf("the agent pod restarted: %s restarts %d -> %s %d", agent.Name, restarts(agent), a2.Name, restarts(a2))
	}
}

// Scenario 5: NRI. With containerd's NRI on and the chart's nri.enabled,
// a new container's first process is at 900 before it runs a single
// instruction.
func scenarioNRI(t *testing.T, c *cluster, n *Node) {
	ctx := t.Context()
	if err := c.helm.upgrade(ctx, t, release, withValues(map[string]any{"nri": map[string]any{"enabled": true}})); err != nil {
		t.Fatalf("helm upgrade --set nri.enabled=true: %v", err)
	}
	agent := c.agentPod(ctx, t, nodeA, 2)
	if err := poll(ctx, 2*time.Minute, 2*time.Second, func(ctx context.Context) (bool, error) {
		logs, err := podLogs(ctx, c.admin, agentNS, agent.Name, "nri")
		return strings.Contains(logs, "nri: synchronized"), err
	}); err != nil {
		t.Fatalf("the NRI plugin never synchronized with containerd: %v", err)
	}
	script := `read a < /proc/self/oom_score_adj; read g < /sys/fs/cgroup/memory.oom.group; echo "adj=$a group=$g"; sleep 1000000`
	createPod(ctx, t, c.admin, podSpec(usersNS, "nri-probe", nodeA, script, "", ""))
	p, err := waitRunning(ctx, c.admin, usersNS, "nri-probe", 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var logs string
	_ = poll(ctx, time.Minute, time.Second, func(ctx context.Context) (bool, error) {
		logs, err = podLogs(ctx, c.admin, usersNS, "nri-probe", "main")
		return strings.Contains(logs, "adj="), err
	})
	t.Logf("REPORT scenario 5: the entrypoint's first read: %s", strings.TrimSpace(logs))
	if !strings.Contains(logs, "adj=900 group=0") {
		t.Errorf("first process saw %q, want adj=900 group=0", strings.TrimSpace(logs))
	}
	spec, err := n.Sh(ctx, "ctr -n k8s.io containers info "+containerID(p, "main")+" | grep -E '\"oomScoreAdj\"|memory.oom.group'")
	t.Logf("REPORT scenario 5: the container's OCI spec (NRI adjusted): %s %v", strings.Join(strings.Fields(spec), " "), err)
	if !strings.Contains(spec, `"oomScoreAdj": 900`) {
		t.Errorf("the runtime spec does not carry oomScoreAdj 900: %s", spec)
	}
	_ = deletePod(ctx, c.admin, usersNS, "nri-probe")
}

// Scenario 6: helm upgrade with a changed policy takes effect without
// restarting the protected pods; helm uninstall removes every object.
func scenarioUpgradeUninstall(t *testing.T, c *cluster, n *Node) {
	ctx := t.Context()
	ids := map[string]string{}
	for _, name := range []string{"nb", "lab"} {
		_, p := c.view(ctx, t, n, usersNS, name)
		ids[name] = containerID(p, "main")
	}
	start := time.Now()
	vals := withValues(map[string]any{"nri": map[string]any{"enabled": true}, "policy": map[string]any{"podOOMScoreAdj": 800}})
	if err := c.helm.upgrade(ctx, t, release, vals); err != nil {
		t.Fatalf("helm upgrade: %v", err)
	}
	for _, name := range []string{"nb", "lab"} {
		var v ContainerView
		var p *corev1.Pod
		if err := poll(ctx, 4*time.Minute, time.Second, func(ctx context.Context) (bool, error) {
			v, p = c.view(ctx, t, n, usersNS, name)
			return v.protected(800), nil
		}); err != nil {
			t.Errorf("%s never moved to 800: %s", name, v)
		}
		if containerID(p, "main") != ids[name] || restarts(p) != 0 {
			t.Errorf("%s was restarted by the upgrade (container %s -> %s, restarts %d)", name, ids[name], containerID(p, "main"), restarts(p))
		}
	}
	timing("scenario 6: new policy (adj 800) on running pods %s after helm upgrade", time.Since(start).Round(100*time.Millisecond))

	if err := c.helm.uninstall(t, release); err != nil {
		t.Fatalf("helm uninstall: %v", err)
	}
	var left []string
	if err := poll(ctx, 3*time.Minute, 2*time.Second, func(ctx context.Context) (bool, error) {
		left = c.releaseObjects(ctx)
		return len(left) == 0, nil
	}); err != nil {
		t.Errorf("objects left after helm uninstall: %v", left)
	}
	for _, name := range []string{"nb", "lab"} {
		v, _ := c.view(ctx, t, n, usersNS, name)
		t.Logf("REPORT scenario 6: after uninstall, on the node, %s keeps %s", name, v)
		if !v.protected(800) {
			t.Logf("%s changed after uninstall: %s", name, v)
		}
	}
	hostd, _ := n.Sh(ctx, "for d in sshd systemd-network; do echo \"$d $(cat /proc/$(sh /pw/service.sh pids $d)/oom_score_adj)\"; done")
	t.Logf("REPORT scenario 6: after uninstall, host daemons keep: %s", strings.Join(strings.Fields(hostd), " "))
}

// releaseObjects lists what of the release is still in the API.
func (c *cluster) releaseObjects(ctx context.Context) []string {
	var left []string
	sel := metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + release}
	if l, err := c.admin.AppsV1().DaemonSets(agentNS).List(ctx, sel); err == nil {
		for _, o := range l.Items {
			left = append(left, "DaemonSet/"+o.Name)
		}
	}
	if l, err := c.admin.CoreV1().Pods(agentNS).List(ctx, sel); err == nil {
		for _, o := range l.Items {
			left = append(left, "Pod/"+o.Name)
		}
	}
	if l, err := c.admin.CoreV1().ConfigMaps(agentNS).List(ctx, sel); err == nil {
		for _, o := range l.Items {
			left = append(left, "ConfigMap/"+o.Name)
		}
	}
	if l, err := c.admin.CoreV1().ServiceAccounts(agentNS).List(ctx, sel); err == nil {
		for _, o := range l.Items {
			left = append(left, "ServiceAccount/"+o.Name)
		}
	}
	if l, err := c.admin.CoreV1().Services(agentNS).List(ctx, sel); err == nil {
		for _, o := range l.Items {
			left = append(left, "Service/"+o.Name)
		}
	}
	if l, err := c.admin.RbacV1().ClusterRoles().List(ctx, sel); err == nil {
		for _, o := range l.Items {
			left = append(left, "ClusterRole/"+o.Name)
		}
	}
	if l, err := c.admin.RbacV1().ClusterRoleBindings().List(ctx, sel); err == nil {
		for _, o := range l.Items {
			left = append(left, "ClusterRoleBinding/"+o.Name)
		}
	}
	if l, err := c.admin.RbacV1().RoleBindings(agentNS).List(ctx, sel); err == nil {
		for _, o := range l.Items {
			left = append(left, "RoleBinding/"+o.Name)
		}
	}
	if l, err := c.admin.CoreV1().Secrets(agentNS).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,name=" + release}); err == nil {
		for _, o := range l.Items {
			left = append(left, "Secret/"+o.Name+" (Helm release)")
		}
	}
	return left
}

// Scenario 7: the same install on a node without AppArmor runs and
// protects, and the agent's own pod is never a target.
func scenarioNoAppArmor(t *testing.T, c *cluster, n *Node) {
	ctx := t.Context()
	aa, _ := n.Sh(ctx, "cat /sys/module/apparmor/parameters/enabled; ls /sys/kernel/security")
	t.Logf("REPORT scenario 7: AppArmor enabled=%s", strings.Join(strings.Fields(aa), " "))
	if !strings.HasPrefix(strings.TrimSpace(aa), "N") {
		t.Fatalf("node B has AppArmor on: %s", aa)
	}
	start := time.Now()
	if err := c.helm.install(ctx, t, release, agentValues); err != nil {
		t.Fatalf("helm install: %v", err)
	}
	agent := c.agentPod(ctx, t, nodeB, 1)
	timing("scenario 7: agent pod Ready on the node without AppArmor %s after helm install", time.Since(start).Round(100*time.Millisecond))
	createPod(ctx, t, c.admin, podSpec(usersNS, "nb-b", nodeB, idleScript, labCPU, labMem))
	if _, err := waitRunning(ctx, c.admin, usersNS, "nb-b", 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	var v ContainerView
	if err := poll(ctx, 2*time.Minute, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
		v, _ = c.view(ctx, t, n, usersNS, "nb-b")
		return v.protected(900), nil
	}); err != nil {
		t.Errorf("nb-b not protected: %s", v)
	}
	// The agent's own container keeps what kubelet gave it, past a full
	// reconcile period; and the agent does not count itself.
	time.Sleep(time.Until(start.Add(20 * time.Second)))
	self, err := viewContainer(ctx, n, containerID(agent, "agent"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("REPORT scenario 7: the agent's own container: %s", self)
	if self.OOMGroup != "1" || slices.ContainsFunc(self.Procs, func(p GuestProc) bool { return p.Adj == 900 }) {
		t.Errorf("the agent targets its own pod: %s", self)
	}
	text, err := c.metrics(ctx, agent.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := metricValue(text, "podwarden_protected_containers"); got != 1 {
		t.Errorf("podwarden_protected_containers = %g, want 1 (nb-b only)\n%s", got, grepLines(text, "protected"))
	}
	if _, ok := metricValue(text, "podwarden_protected_container_info", `namespace="`+agentNS+`"`); ok {
		t.Errorf("the agent lists its own namespace as protected:\n%s", grepLines(text, "protected_container_info"))
	}
	if err := c.helm.uninstall(t, release); err != nil {
		t.Errorf("helm uninstall: %v", err)
	}
}
