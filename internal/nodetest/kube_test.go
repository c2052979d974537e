package nodetest

// Kubernetes-side helpers of the node test: pods as a user writes them,
// exec and logs through the API server (which reaches the kubelet through
// the egress tunnel), the chart through Helm's Go SDK, and the guest's
// view of a pod's cgroup and processes.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/cli"
	"helm.sh/helm/v3/pkg/registry"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/streaming/pkg/httpstream"
)

// poll runs cond every interval until it returns true or an error, or the
// deadline passes. Deadlines are generous: the guest is emulated (TCG) on
// a busy 2-core machine.
func poll(ctx context.Context, timeout, interval time.Duration, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		ok, err := cond(ctx)
		if ok && err == nil {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
			}
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// podSpec is a one-container pod of the workload image running script.
// Guaranteed when cpu is set (requests = limits), like the notes' pod.
func podSpec(ns, name, node, script, cpu, mem string) *corev1.Pod {
	res := corev1.ResourceRequirements{}
	if mem != "" {
		l := corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(mem)}
		if cpu != "" {
			l[corev1.ResourceCPU] = resource.MustParse(cpu)
		}
		res.Limits, res.Requests = l, l
	}
	grace := int64(2)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name: "main", Image: WorkloadImage, ImagePullPolicy: corev1.PullNever,
				Command: []string{"/bin/sh", "-c", script}, Resources: res,
			}},
		},
	}
}

func createPod(ctx context.Context, t *testing.T, c kubernetes.Interface, p *corev1.Pod) {
	t.Helper()
	if _, err := c.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating pod %s/%s: %v", p.Namespace, p.Name, err)
	}
}

// waitRunning waits until every container of the pod runs (and is ready,
// when it has a readiness probe) and returns the pod.
func waitRunning(ctx context.Context, c kubernetes.Interface, ns, name string, timeout time.Duration) (*corev1.Pod, error) {
	var pod *corev1.Pod
	err := poll(ctx, timeout, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
		p, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		pod = p
		if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) == 0 {
			return false, fmt.Errorf("phase %s %s", p.Status.Phase, waitingReasons(p))
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Running == nil || !cs.Ready {
				return false, fmt.Errorf("container %s not ready %s", cs.Name, waitingReasons(p))
			}
		}
		return true, nil
	})
	if err != nil {
		return pod, fmt.Errorf("pod %s/%s not running: %w", ns, name, err)
	}
	return pod, nil
}

func waitingReasons(p *corev1.Pod) string {
	var r []string
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			r = append(r, cs.Name+": "+w.Reason+" "+w.Message)
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue && c.Message != "" {
			r = append(r, string(c.Type)+": "+c.Message)
		}
	}
	if len(r) == 0 {
		return ""
	}
	return "(" + strings.Join(r, "; ") + ")"
}

func deletePod(ctx context.Context, c kubernetes.Interface, ns, name string) error {
	zero := int64(0)
	err := c.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return poll(ctx, 2*time.Minute, time.Second, func(ctx context.Context) (bool, error) {
		_, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
}

// kubectlExec runs argv in the pod's container through the API server, as
// `kubectl exec` does, and returns stdout, stderr and the exit error.
func kubectlExec(ctx context.Context, cfg *rest.Config, c kubernetes.Interface, ns, pod, container string, argv ...string) (string, string, error) {
	req := c.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: argv, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ws, err := remotecommand.NewWebSocketExecutor(cfg, "GET", req.URL().String())
	if err != nil {
		return "", "", err
	}
	spdy, err := remotecommand.NewSPDYExecutor(cfg, "POST", req.URL())
	if err != nil {
		return "", "", err
	}
	// Fall back to SPDY only when the WebSocket upgrade itself failed, as
	// kubectl does: any later error means the command ran, and running it
	// again (a hog!) would be wrong.
	ex, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return "", "", err
	}
	var out, errb bytes.Buffer
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &errb})
	return out.String(), errb.String(), err
}

func podLogs(ctx context.Context, c kubernetes.Interface, ns, pod, container string) (string, error) {
	rc, err := c.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container}).Stream(ctx)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

// containerID strips the runtime prefix of a container status's ID.
func containerID(p *corev1.Pod, name string) string {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == name {
			_, id, _ := strings.Cut(cs.ContainerID, "://")
			return id
		}
	}
	return ""
}

// GuestProc is one process of a container as the guest's kernel shows it.
type GuestProc struct {
	PID  int
	Comm string
	Adj  int
}

// ContainerView is a container's cgroup and processes, read in the guest.
type ContainerView struct {
	Cgroup   string
	OOMGroup string
	Procs    []GuestProc
}

// viewContainer reads memory.oom.group and every process's oom_score_adj
// of the container id, from the guest's own /sys and /proc.
func viewContainer(ctx context.Context, n *Node, id string) (ContainerView, error) {
	out, err := n.Sh(ctx, fmt.Sprintf(`d=$(find /sys/fs/cgroup/kubepods -type d -name %q | head -1)
[ -n "$d" ] || { echo "no cgroup for %s" >&2; exit 1; }
echo "cgroup ${d#/sys/fs/cgroup}"
echo "group $(cat $d/memory.oom.group)"
for p in $(cat $d/cgroup.procs); do echo "proc $p $(cat /proc/$p/oom_score_adj 2>/dev/null) $(cat /proc/$p/comm 2>/dev/null)"; done`, id, id))
	if err != nil {
		return ContainerView{}, err
	}
	var v ContainerView
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 2 && f[0] == "cgroup":
			v.Cgroup = f[1]
		case len(f) == 2 && f[0] == "group":
			v.OOMGroup = f[1]
		case len(f) == 4 && f[0] == "proc":
			pid, _ := strconv.Atoi(f[1])
			adj, err := strconv.Atoi(f[2])
			if err != nil {
				continue // exited between the listing and the read
			}
			v.Procs = append(v.Procs, GuestProc{PID: pid, Adj: adj, Comm: f[3]})
		}
	}
	return v, nil
}

// protected: oom.group 0 and every process at adj.
func (v ContainerView) protected(adj int) bool {
	if v.OOMGroup != "0" || len(v.Procs) == 0 {
		return false
	}
	for _, p := range v.Procs {
		if p.Adj != adj {
			return false
		}
	}
	return true
}

func (v ContainerView) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s oom.group=%s", v.Cgroup, v.OOMGroup)
	for _, p := range v.Procs {
		fmt.Fprintf(&b, " %s[%d]=%d", p.Comm, p.PID, p.Adj)
	}
	return b.String()
}

// helmClient runs Helm's install, upgrade and uninstall as `helm` does,
// from a kubeconfig, with the chart pulled from chartRef at version (the
// release registry) on each install and upgrade, as `helm install
// oci://... --version` does.
type helmClient struct {
	kubeconfig, namespace string
	chartRef, version     string
	registry              *registry.Client
	settings              *cli.EnvSettings
}

func (h helmClient) config(t *testing.T) *action.Configuration {
	t.Helper()
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig, flags.Namespace = &h.kubeconfig, &h.namespace
	cfg := new(action.Configuration)
	if err := cfg.Init(flags, h.namespace, "secret", func(format string, v ...any) {}); err != nil {
		t.Fatalf("helm init: %v", err)
	}
	cfg.RegistryClient = h.registry
	return cfg
}

func (h helmClient) install(ctx context.Context, t *testing.T, release string, values map[string]any) error {
	t.Helper()
	in := action.NewInstall(h.config(t))
	chrt, err := h.locate(&in.ChartPathOptions)
	if err != nil {
		return err
	}
	in.ReleaseName, in.Namespace = release, h.namespace
	in.Timeout = 5 * time.Minute
	_, err = in.RunWithContext(ctx, chrt, values)
	return err
}

func (h helmClient) upgrade(ctx context.Context, t *testing.T, release string, values map[string]any) error {
	t.Helper()
	up := action.NewUpgrade(h.config(t))
	chrt, err := h.locate(&up.ChartPathOptions)
	if err != nil {
		return err
	}
	up.Namespace = h.namespace
	up.Timeout = 5 * time.Minute
	_, err = up.RunWithContext(ctx, release, chrt, values)
	return err
}

func (h helmClient) uninstall(t *testing.T, release string) error {
	t.Helper()
	un := action.NewUninstall(h.config(t))
	un.Timeout = 5 * time.Minute
	_, err := un.Run(release)
	return err
}
