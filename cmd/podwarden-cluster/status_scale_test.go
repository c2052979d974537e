package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"podwarden/internal/agent"
	"podwarden/internal/kubetest"
	"podwarden/internal/status"
)

// statusBinEnv runs TestStatusScale with another podwarden-cluster binary
// (an older one, to compare).
const statusBinEnv = "PODWARDEN_STATUS_BIN"

// statusNodesEnv sets TestStatusScale's size; make bench-status runs it at
// 100, 1,000 and 5,000.
const statusNodesEnv = "PODWARDEN_STATUS_NODES"

// What a fake agent does when faults are on (every 20th hangs; a few
// others are hostile: anything can answer on a pod's IP).
const (
	faultNone       = ""
	faultHang       = "hang"        // accepts, never answers
	faultEndless    = "endless"     // 200 and a body that never ends
	faultEndless500 = "endless 500" // 500 and a body that never ends
	faultDrip       = "drip"        // a byte a second
	faultHTML       = "html"        // a proxy's error page, not metrics
)

func faultOf(i int) string {
	switch {
	case i%20 == 19:
		return faultHang
	case i == 1:
		return faultEndless
	case i == 3:
		return faultEndless500
	case i == 5:
		return faultDrip
	case i == 7:
		return faultHTML
	}
	return faultNone
}

// TestStatusScale runs `podwarden-cluster status` (the built binary, as the
// chart's viewer) against a REAL kube-apiserver holding N Node objects and
// N agent pods made from the chart's DaemonSet template, whose status (IP,
// Running, Ready) the test writes, since no kubelet runs here. The agents
// are fakes that serve the agent's real metric families (its
// agent.NewMetrics registry, 20 protected containers a node) on each pod's
// own IP, in a network namespace of the test's own where those IPs are
// local, so the API server's real pod proxy reaches every one.
//
// Three runs: all agents healthy; every 20th hanging and a few hostile
// (endless bodies, a drip, an HTML page); the same with --timeout 2s. Each
// must read every healthy agent and name every other one with its reason.
// Times are logged, never asserted: make bench-status runs it at 100,
// 1,000 and 5,000 nodes for the figures in docs/kubernetes.md.
func TestStatusScale(t *testing.T) {
	if !kubetest.IsolatedNetwork(t, kubetest.PodRange) {
		return
	}
	n := 600 // more than a page (500) of pods and of nodes
	if v := os.Getenv(statusNodesEnv); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 60000 {
			t.Fatalf("%s=%q: want a number of nodes, 1 to 60000", statusNodesEnv, v)
		}
	}
	const viewerToken = "alice-token"
	srv := kubetest.Start(t, kubetest.User{Token: viewerToken, Name: "alice", Groups: []string{"sre"}})
	installChart(t, srv)
	agents := startFakeAgents(t)
	const withoutAgent = 2
	created := time.Now()
	createAgentPods(t, srv, n, withoutAgent)
	t.Logf("%d nodes and agent pods created in %s", n, time.Since(created).Round(100*time.Millisecond))
	bin := os.Getenv(statusBinEnv)
	if bin == "" {
		bin = buildClusterBinary(t)
	}
	kubeconfig := statusKubeconfig(t, srv, viewerToken)

	for _, run := range []struct {
		name    string
		faults  bool
		timeout string
	}{
		{"all healthy", false, "5s"},
		{"every 20th hangs", true, "5s"},
		{"every 20th hangs, --timeout 2s", true, "2s"},
	} {
		t.Run(run.name, func(t *testing.T) {
			agents.faults.Store(run.faults)
			// The runs with hung agents take longer than a second: their
			// stderr is a terminal, where status must show its progress.
			out, terminal := runMeasured(t, srv, n, run.name, run.faults, bin, "status", "--kubeconfig", kubeconfig, "-o", "json", "--timeout", run.timeout)
			if run.faults {
				if want := fmt.Sprintf("/%d, ", n); !bytes.Contains(terminal, []byte("\r\x1b[Kreading agents: ")) ||
					!bytes.Contains(terminal, []byte(want)) || !bytes.HasSuffix(terminal, []byte("\r\x1b[K")) {
					t.Errorf("terminal: %.300q, want progress lines (\"reading agents: N%s\") and the line cleared", terminal, want)
				}
			}
			var st status.Cluster
			if err := json.Unmarshal(out, &st); err != nil {
				t.Fatalf("status -o json: %v\n%.2000s", err, out)
			}
			if len(st.Agents) != n {
				t.Fatalf("%d agents, want %d", len(st.Agents), n)
			}
			unreadable := 0
			for i, a := range st.Agents {
				node := nodeName(i)
				want := faultNone
				if run.faults {
					want = faultOf(i)
				}
				if a.Node != node || !a.Ready {
					t.Errorf("agent %d: node %q ready %v, want %s ready", i, a.Node, a.Ready, node)
					continue
				}
				if want != faultNone {
					unreadable++
					if a.Metrics != nil || !strings.Contains(a.Error, faultReason(want, run.timeout)) {
						t.Errorf("%s (%s): error %q, want %q", node, want, a.Error, faultReason(want, run.timeout))
					}
					continue
				}
				if m := a.Metrics; m == nil || a.Error != "" || m.ProtectedContainers != 20 || len(m.ProtectedPods) != 20 ||
					!strings.Contains(m.ProtectedPods[0], "-"+node+"-") || m.OOMKillsTotal != 3 || m.Version != "v-scale" {
					t.Errorf("%s: healthy agent not read right: error %q, metrics %+v", node, a.Error, a.Metrics)
				}
			}
			if len(st.NodesWithoutAgent) != withoutAgent || st.NodesWithoutAgent[0] != nodeName(n) {
				t.Errorf("nodes without agent %v, want %s and %s", st.NodesWithoutAgent, nodeName(n), nodeName(n+1))
			}
			t.Logf("%d agents read, %d named unreadable", n-unreadable, unreadable)
		})
	}
}

// faultReason is what status says of an agent with fault f.
func faultReason(f, timeout string) string {
	switch f {
	case faultEndless, faultEndless500:
		return "larger than 4 MiB"
	case faultHTML:
		return "parsing metrics"
	}
	return "no complete answer within " + timeout
}

func nodeName(i int) string { return fmt.Sprintf("node-%05d", i) }

// podIP is node i's agent's IP in kubetest.PodRange.
func podIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, byte((i + 1) >> 8), byte(i + 1)})
}

type fakeAgents struct {
	faults atomic.Bool
	page   []byte // nodePlaceholder stands for the node's name
}

const nodePlaceholder = "NODE_PLACEHOLDER"

// startFakeAgents serves every agent on port 9808 of every address of
// kubetest.PodRange: one server, which tells the agents apart by the
// address a request came to.
func startFakeAgents(t *testing.T) *fakeAgents {
	t.Helper()
	a := &fakeAgents{page: agentPage(t)}
	l, err := net.Listen("tcp", ":9808")
	if err != nil {
		t.Fatal(err)
	}
	s := &http.Server{Handler: a, ReadHeaderTimeout: time.Minute}
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	return a
}

func (a *fakeAgents) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	ap, err := netip.ParseAddrPort(fmt.Sprint(local))
	if err != nil || !ap.Addr().Is4() || r.URL.Path != "/metrics" {
		http.NotFound(w, r)
		return
	}
	b := ap.Addr().As4()
	i := int(b[2])<<8 + int(b[3]) - 1
	fault := faultNone
	if a.faults.Load() {
		fault = faultOf(i)
	}
	switch fault {
	case faultHang:
		<-r.Context().Done()
		return
	case faultEndless, faultEndless500:
		if fault == faultEndless500 {
			w.WriteHeader(http.StatusInternalServerError)
		}
		chunk := bytes.Repeat([]byte("podwarden_protected_containers 1\n"), 2000)
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		return
	case faultDrip:
		for r.Context().Err() == nil {
			if _, err := w.Write([]byte("#")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(time.Second)
		}
		return
	case faultHTML:
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html><body>502 Bad Gateway</body></html>\n"))
		return
	}
	w.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	_, _ = w.Write(bytes.ReplaceAll(a.page, []byte(nodePlaceholder), []byte(nodeName(i))))
}

// agentPage renders the agent's own registry (agent.NewMetrics, build
// info, Go and process collectors, as cmd/podwarden-agent registers them)
// for a node with 20 protected containers, 3 OOM kills and some drift.
func agentPage(t *testing.T) []byte {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := agent.NewMetrics(reg)
	agent.RegisterBuildInfo(reg, "v-scale")
	m.ProtectedContainers.Set(20)
	m.ProtectedProcesses.Set(60)
	for j := range 20 {
		ns, pod := fmt.Sprintf("team-%d", j%4), fmt.Sprintf("app-%s-%02d", nodePlaceholder, j)
		m.ProtectedInfo.WithLabelValues(ns, pod, "main").Set(1)
		m.Changes.WithLabelValues("oom_score_adj", "ok").Add(3)
		m.ProtectLatency.Observe(0.002)
	}
	m.OOMKills.WithLabelValues("team-0", "app-"+nodePlaceholder+"-00", "main", agent.OOMKindCgroup).Add(2)
	m.OOMKills.WithLabelValues("", "", "", agent.OOMKindHost).Add(1)
	m.DriftRepairs.WithLabelValues("oom_score_adj").Add(2)
	m.Errors.WithLabelValues("event").Add(1)
	m.Reconcile.WithLabelValues("interval").Observe(0.01)
	m.DependencyUp.WithLabelValues("container-runtime").Set(1)
	m.KernelLogSource.WithLabelValues("kmsg").Set(1)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range fams {
		if err := enc.Encode(f); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// createAgentPods creates nodes 0 to n+extra-1 and, on the first n, an
// agent pod from the chart's DaemonSet template, Running and Ready at
// podIP(i), as a kubelet would report it.
func createAgentPods(t *testing.T, srv *kubetest.Server, n, extra int) {
	t.Helper()
	ctx := t.Context()
	cfg := srv.Config(kubetest.AdminToken)
	cfg.QPS = -1
	admin, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := admin.AppsV1().DaemonSets("podwarden-system").Get(ctx, "podwarden", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	parallel(t, n+extra, func(i int) error {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName(i), Labels: map[string]string{"kubernetes.io/hostname": nodeName(i)}}}
		if _, err := admin.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating node %s: %w", nodeName(i), err)
		}
		if i >= n {
			return nil
		}
		tpl := ds.Spec.Template.DeepCopy()
		pod := &corev1.Pod{ObjectMeta: tpl.ObjectMeta, Spec: tpl.Spec}
		pod.Name, pod.Spec.NodeName = "podwarden-"+nodeName(i), nodeName(i)
		pod, err := admin.CoreV1().Pods("podwarden-system").Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating agent pod on %s: %w", nodeName(i), err)
		}
		now := metav1.Now()
		ip, hostIP := podIP(i).String(), podIP(i).String() // hostNetwork: the node's IP
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
			HostIP: hostIP, HostIPs: []corev1.HostIP{{IP: hostIP}}, StartTime: &now,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}}}
		for _, c := range pod.Spec.Containers {
			pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{
				Name: c.Name, Image: c.Image, Ready: true, Started: new(true),
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}})
		}
		if _, err := admin.CoreV1().Pods("podwarden-system").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("writing the status of the agent pod on %s: %w", nodeName(i), err)
		}
		return nil
	})
}

// parallel runs f(0..n-1) on 16 goroutines and fails the test with the
// first error.
func parallel(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

// buildClusterBinary builds podwarden-cluster (from the module cache only:
// the test's network namespace has no way out).
func buildClusterBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "podwarden-cluster")
	cmd := exec.Command("go", "build", "-o", bin, "podwarden/cmd/podwarden-cluster")
	cmd.Env = append(os.Environ(), "GOPROXY=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building podwarden-cluster: %v\n%s", err, out)
	}
	return bin
}

// runMeasured runs the binary, fails the test if it fails, and logs its
// wall time, peak RSS and CPU time and the CPU time the API server and
// etcd spent meanwhile. The line starting "figures:" is what make
// bench-status collects.
// With tty, its stderr is a terminal (a pty), and what it wrote there is
// returned too.
func runMeasured(t *testing.T, srv *kubetest.Server, nodes int, name string, tty bool, bin string, args ...string) (stdout, terminal []byte) {
	t.Helper()
	apiBefore, err := kubetest.ProcessCPU(srv.APIServerPID)
	if err != nil {
		t.Fatal(err)
	}
	etcdBefore, err := kubetest.ProcessCPU(srv.EtcdPID)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), bin, args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	var termOut <-chan []byte
	if tty {
		var pts *os.File
		pts, termOut = openPTY(t)
		cmd.Stderr = pts
		defer pts.Close()
	}
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	if tty {
		cmd.Stderr.(*os.File).Close()
		terminal = <-termOut
	}
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%q", bin, strings.Join(args, " "), err, stderr.Bytes(), terminal)
	}
	apiAfter, _ := kubetest.ProcessCPU(srv.APIServerPID)
	etcdAfter, _ := kubetest.ProcessCPU(srv.EtcdPID)
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	api := apiAfter - apiBefore
	t.Logf("figures: nodes=%d run=%q wall=%.1fs status_rss=%dMiB status_cpu=%.2fs apiserver_cpu=%.2fs (%.2fms/node) etcd_cpu=%.2fs",
		nodes, name, wall.Seconds(), ru.Maxrss>>10, cpu.Seconds(), api.Seconds(),
		float64(api.Microseconds())/1000/float64(nodes), (etcdAfter - etcdBefore).Seconds())
	return out.Bytes(), terminal
}

// openPTY opens a pseudo-terminal and returns its terminal end and what is
// written to it, delivered once that end is closed everywhere.
func openPTY(t *testing.T) (*os.File, <-chan []byte) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlocking the pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	pts, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening the pty's terminal end: %v", err)
	}
	done := make(chan []byte, 1)
	go func() {
		// Once every copy of the terminal end is closed the read fails
		// (EIO): that is the end of the output.
		b, _ := io.ReadAll(ptmx)
		done <- b
	}()
	return pts, done
}
