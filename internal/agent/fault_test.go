package agent

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
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
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-client/pkg/fake"

	"podwarden/internal/cri"
	"podwarden/internal/kubeevent"
	"podwarden/internal/policy"
)

// Fault injection on this host's real cgroup tree and real processes: each
// test reproduces one way the protection promise broke ("a target is
// protected within milliseconds, always, and nothing else is touched") and
// holds the fix to it. The container runtime is the cri-client fake over a
// real unix socket, with calls that can be made to hang; the API server is
// a loopback HTTPS server that never answers. Both are fakes because
// neither a containerd nor a kube-apiserver that hangs on purpose can run
// here; the agent talks to them with its real clients.

// hangingRuntime is the cri-client fake whose list calls block while hang
// is set, as a runtime stuck on a busy node does.
type hangingRuntime struct {
	*fake.RemoteRuntime
	hang    atomic.Bool
	release chan struct{}
	lists   atomic.Int64
}

func (h *hangingRuntime) wait(ctx context.Context) {
	h.lists.Add(1)
	if h.hang.Load() {
		select {
		case <-h.release:
		case <-ctx.Done():
		}
	}
}

func (h *hangingRuntime) ListPodSandbox(ctx context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	h.wait(ctx)
	return h.RemoteRuntime.ListPodSandbox(ctx, req)
}

func (h *hangingRuntime) ListContainers(ctx context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	h.wait(ctx)
	return h.RemoteRuntime.ListContainers(ctx, req)
}

// criHost is a live host whose targets come from a CRI runtime.
type criHost struct {
	*liveHost
	rt     *hangingRuntime
	client *cri.Client
}

func newCRIHost(t *testing.T) *criHost {
	h := newLiveHost(t)
	sock := filepath.Join(t.TempDir(), "cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	rt := &hangingRuntime{RemoteRuntime: fake.NewFakeRemoteRuntime(), release: make(chan struct{})}
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, rt)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { close(rt.release); srv.Stop() })
	client, err := cri.Dial(t.Context(), "unix://"+sock, cri.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return &criHost{liveHost: h, rt: rt, client: client}
}

// pod makes a pod sandbox with one running container in the runtime and
// its container cgroup in the tree (kubelet's cgroupfs layout under the
// test's prefix), and returns the container cgroup.
func (h *criHost) pod(name, ns, uid string) string {
	h.t.Helper()
	ctx := h.t.Context()
	rs := h.rt.RuntimeService
	sb, err := rs.RunPodSandbox(ctx, &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Uid: uid, Namespace: ns}}, "")
	if err != nil {
		h.t.Fatal(err)
	}
	id, err := rs.CreateContainer(ctx, sb, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "main"}, Image: &runtimeapi.ImageSpec{Image: "busybox"}}, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := rs.StartContainer(ctx, id); err != nil {
		h.t.Fatal(err)
	}
	cg := h.prefix + "/kubepods/pod" + uid + "/" + id
	h.mkdir(cg)
	return cg
}

// run starts the agent's loop and waits until it is ready.
func (h *liveHost) run(a *Agent) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Error(err)
		}
	})
	waitFor(h.t, 60*time.Second, "agent ready", a.Ready)
}

// waitFor polls cond until it holds or the deadline passes. Deadlines are
// generous: CI runs on a busy machine.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
	}
}

// protectLatencies starts n processes in target cgroup cg one after the
// other and returns how long each took to reach adj 900, from just before
// it was forked. The hard limit is far above the 100 ms goal and far below
// the stalls the faults caused (5 s per runtime call, 30 s per API
// request). The 100 ms goal is held on the agent's own measure, from the
// kernel event's receipt to the write (podwarden_protect_latency_seconds,
// which includes any wait in the loop): what the test sees also includes
// forking a shell on a loaded machine, which is not the agent's.
func (h *liveHost) protectLatencies(a *Agent, cg string, n int) []time.Duration {
	h.t.Helper()
	before := latencyBuckets(h.t, a)
	var lat []time.Duration
	for range n {
		start := time.Now()
		pid := h.startNamed(cg, "sleep").Process.Pid
		for h.adj(pid) != 900 {
			if time.Since(start) > 3*time.Second {
				h.t.Fatalf("pid %d in target %s still at adj %d after %v: the protection path waited", pid, cg, h.adj(pid), time.Since(start))
			}
			time.Sleep(200 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
	}
	after := latencyBuckets(h.t, a)
	count, under := after.count-before.count, after.under100ms-before.under100ms
	h.t.Logf("fork to adj 900 as the test saw it: %v; the agent's event-to-write latency: %d of %d under %v", lat, under, count, after.bound)
	// Fewer observations than processes is not a failure: when the kernel
	// drops process events on a busy host (other tests fork hundreds of
	// processes a second), the agent's rescan protects the rest, and a
	// rescan has no event time to measure from. Each process still had to
	// reach 900 within the hard limit above.
	if count < uint64(n) {
		h.t.Logf("%d of %d processes were protected by a rescan, not an event (events lost on this busy host: %v)", uint64(n)-count, n, eventsLost(h.t, a))
	}
	if count == 0 || 2*under < count {
		h.t.Errorf("the agent's protection latency: %d of %d writes under %v, want the median below it", under, count, after.bound)
	}
	return lat
}

type latencyCounts struct {
	count, under100ms uint64
	bound             time.Duration
}

// latencyBuckets reads the protect latency histogram: observations in all,
// and at or below its largest bucket bound under 110 ms.
func latencyBuckets(t *testing.T, a *Agent) latencyCounts {
	t.Helper()
	var m dto.Metric
	if err := a.m.ProtectLatency.Write(&m); err != nil {
		t.Fatal(err)
	}
	out := latencyCounts{count: m.GetHistogram().GetSampleCount()}
	for _, b := range m.GetHistogram().GetBucket() {
		if b.GetUpperBound() <= 0.11 {
			out.under100ms = b.GetCumulativeCount()
			out.bound = time.Duration(b.GetUpperBound() * float64(time.Second)).Round(time.Millisecond)
		}
	}
	return out
}

// eventsLost sums podwarden_events_lost_total over its sources.
func eventsLost(t *testing.T, a *Agent) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 8)
	go func() { a.m.EventsLost.Collect(ch); close(ch) }()
	var sum float64
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		sum += d.GetCounter().GetValue()
	}
	return sum
}

func healthz(t *testing.T, a *Agent) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	a.ServeHealth(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	return rec.Code, rec.Body.String()
}

// ooms writes a real v1 memcg OOM report (from this host, see
// internal/oomreport/testdata) into the FIFO the agent reads as its kernel
// log device, with the victim moved into cgroup cg.
func writeOOM(t *testing.T, fifo, cg string) {
	t.Helper()
	b, err := os.ReadFile("../oomreport/testdata/host-6.18.44-fc-v669-v1-memcg.kmsg")
	if err != nil {
		t.Fatal(err)
	}
	report := strings.ReplaceAll(string(b), "/podwarden-fixture", cg)
	f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.WriteString(f, report); err != nil {
		t.Fatal(err)
	}
}

// Defect 1: the pod lookup for an OOM Event ran on the loop with a 30 s
// client timeout, so with the API server hanging a new process in a target
// waited 87 s for its adj, and /healthz said 200 with nothing wrong.
func TestFaultHangingAPIServer(t *testing.T) {
	h := newCRIHost(t)
	h.mkdir(h.prefix + "/kubepods")
	target := h.pod("notebook-0", "users", "8c2d7e1a-3b4f-4a5e-8d6c-7f8091a2b3c4")

	// An API server that accepts connections and never answers.
	var hung atomic.Int64
	stop := make(chan struct{})
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hung.Add(1)
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(stop); api.Close() })
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(token, []byte("test-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := kubeevent.NewReporter(t.Context(), kubeevent.Config{Host: api.URL, TokenFile: token, CAFile: ca}, "node-a", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rep.Close)
	fifo := filepath.Join(dir, "kmsg")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}

	pol := policy.Default()
	pol.Protected = nil
	pol.Selector.Labels = nil
	a, err := New(Config{Policy: pol, Proc: h.proc, Cgroups: h.cg, Runtime: h.client, Reporter: rep,
		KmsgPath: fifo, KernelLog: SourceKmsg, FastInterval: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h.run(a)
	waitFor(t, 30*time.Second, "target found", func() bool { return h.targetCount(a) == 1 })

	// The kernel reports an OOM kill in the target: the agent looks the
	// pod up to post an Event, and the API server never answers.
	writeOOM(t, fifo, target)
	waitFor(t, 60*time.Second, "the pod lookup reaching the API server", func() bool { return hung.Load() > 0 })
	waitFor(t, 60*time.Second, "/healthz naming the API server", func() bool {
		_, body := healthz(t, a)
		return strings.Contains(body, "kube-apiserver")
	})
	code, body := healthz(t, a)
	t.Logf("/healthz %d:\n%s", code, body)
	if code != http.StatusOK || !strings.Contains(body, "ok: protecting") {
		t.Errorf("/healthz = %d %q: protection works, so liveness must hold", code, body)
	}
	// Meanwhile new processes in the target are protected at once.
	h.protectLatencies(a, target, 5)
}

// Defect 3: with the runtime hung, every new cgroup anywhere on the host
// ran a full discovery on the loop, 5 s per runtime call, and new
// processes in existing targets waited 9.7-14.8 s.
func TestFaultHangingRuntime(t *testing.T) {
	h := newCRIHost(t)
	h.mkdir(h.prefix + "/kubepods")
	target := h.pod("jupyter-alice", "hub", "11111111-2222-3333-4444-555555555555")
	pol := policy.Default()
	pol.Protected = nil
	pol.Selector.Labels = nil
	a, err := New(Config{Policy: pol, Proc: h.proc, Cgroups: h.cg, Runtime: h.client, FastInterval: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h.run(a)
	waitFor(t, 30*time.Second, "target found", func() bool { return h.targetCount(a) == 1 })

	h.rt.hang.Store(true)
	// New container cgroups (which need the runtime to name them) and
	// plain cgroups, while the runtime hangs.
	for i := range 20 {
		h.mkdir(fmt.Sprintf("%s/kubepods/pod%08d-aaaa-bbbb-cccc-000000000000/%064x", h.prefix, i, i))
		h.mkdir(fmt.Sprintf("%s/other/%d", h.prefix, i))
	}
	waitFor(t, 60*time.Second, "/healthz naming the runtime", func() bool {
		_, body := healthz(t, a)
		return strings.Contains(body, "container-runtime")
	})
	code, body := healthz(t, a)
	t.Logf("/healthz %d:\n%s", code, body)
	if code != http.StatusOK {
		t.Errorf("/healthz = %d %q, want 200: protection works", code, body)
	}
	h.protectLatencies(a, target, 5)
	// The requests were coalesced: one call in flight, not one per cgroup.
	if n := h.rt.lists.Load(); n > 10 {
		t.Errorf("%d runtime list calls for 20 new container cgroups: not coalesced", n)
	}
}

// targetCount reads the agent's target count from its metric: the loop
// owns the targets map.
func (h *liveHost) targetCount(a *Agent) int {
	return int(testutil.ToFloat64(a.m.ProtectedContainers))
}

// Defect 2: runtime-less, a target process named like a protected host
// daemon was raised to 900 and lowered again by the host rule in the same
// pass, so a user could make a hog the last thing the kernel kills.
func TestFaultTargetNamedSSHD(t *testing.T) {
	h := newLiveHost(t)
	// A non-pod container: its path says nothing about Kubernetes.
	container := h.prefix + "/containers/app1"
	system := h.prefix + "/system/ssh.service"
	h.mkdir(container)
	h.mkdir(system)
	hog := h.startNamed(container, "sshd").Process.Pid
	daemon := h.startNamed(system, "sshd").Process.Pid
	if err := h.proc.WriteOOMScoreAdj(daemon, 500); err != nil {
		t.Fatal(err)
	}
	pol := policy.Default()
	pol.CgroupSelector = h.prefix + "/containers/*"
	// adj 100: lowering to it needs no CAP_SYS_RESOURCE, so the
	// inversion shows on this host. The cgroup glob keeps the rule to the
	// test's own cgroups.
	pol.Protected = []policy.ProtectedRule{{Comm: "sshd", Cgroup: h.prefix + "/**", Adj: 100}}
	pol.Interval = 200 * time.Millisecond
	a, err := New(Config{Policy: pol, Proc: h.proc, Cgroups: h.cg, FastInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for pass := range 3 {
		changes, err := a.Reconcile(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if got := h.adj(hog); got != 900 {
			t.Fatalf("pass %d: target process named sshd at adj %d, below its floor 900; changes %+v", pass, got, changes)
		}
	}
	if got := h.adj(daemon); got != 100 {
		t.Errorf("the host's sshd at adj %d, want 100: the rule must still hold outside targets", got)
	}
	// The running loop: at exec and over several full passes, the target
	// stays at its floor.
	h.run(a)
	late := h.startNamed(container, "sshd").Process.Pid
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		for _, pid := range []int{hog, late} {
			if got := h.adj(pid); got == 100 {
				t.Fatalf("pid %d named sshd in a target lowered by the host rule to adj %d", pid, got)
			}
		}
	}
	if got := h.adj(late); got != 900 {
		t.Errorf("late sshd in the target at adj %d, want 900", got)
	}
}

// Defect 4: writes went to /proc/PID by number, so a target that exited
// between plan and write, its pid recycled, gave a stranger adj 900.
// Here the pid is recycled for real: ns_last_pid makes the kernel hand the
// target's pid to the next process forked.
func TestFaultPIDRecycledBeforeWrite(t *testing.T) {
	h := newLiveHost(t)
	container := h.prefix + "/kubepods/pod11111111-2222-3333-4444-555555555555/" + strings.Repeat("ab", 32)
	h.mkdir(container)
	victim := h.startNamed(container, "sleep")
	pid := victim.Process.Pid
	a := h.agent(false)

	// Plan, as a pass does, and stop before the writes.
	targets, err := a.discover(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	a.setTargets(targets)
	var changes []Change
	if _, errs := a.planTarget(t.Context(), a.targets[container], &changes); len(errs) > 0 {
		t.Fatal(errs)
	}
	if len(changes) != 1 || changes[0].PID != pid {
		t.Fatalf("planned %+v, want one write to pid %d", changes, pid)
	}

	// The target exits and a stranger outside every target gets its pid,
	// in a later clock tick: start times count 10 ms ticks, and on an
	// idle machine this test got the pid back within the tick the target
	// started in (procfs.SetOOMScoreAdj says why a pod cannot).
	time.Sleep(30 * time.Millisecond)
	_ = victim.Process.Kill()
	_ = victim.Wait()
	stranger := recyclePID(t, pid)
	before := h.adj(pid)

	changes = a.apply(changes)
	if got := h.adj(pid); got != before {
		t.Fatalf("the stranger (pid %d, %s) was written: adj %d -> %d", pid, stranger, before, got)
	}
	if c := changes[0]; c.Err == nil || !strings.Contains(c.Err.Error(), "another process") {
		t.Errorf("change %+v: want it marked gone, the pid being another process's", c)
	}
}

var nsLastPID sync.Mutex

// recyclePID starts a process outside every target with pid (free now)
// and returns its description. Other processes on the machine fork too,
// so it tries until it wins the pid.
func recyclePID(t *testing.T, pid int) string {
	t.Helper()
	nsLastPID.Lock()
	defer nsLastPID.Unlock()
	for try := range 500 {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0); err != nil {
			t.Skipf("cannot recycle pids here (ns_last_pid needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE): %v", err)
		}
		cmd := exec.Command("sleep", "300")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if cmd.Process.Pid == pid {
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			// Wait until it has exec'd, so its adj is its own.
			waitFor(t, 30*time.Second, "stranger exec", func() bool {
				b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
				return strings.TrimSpace(string(b)) == "sleep"
			})
			return fmt.Sprintf("sleep, try %d", try+1)
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	t.Fatalf("could not get pid %d back in 500 tries", pid)
	return ""
}
