package kubeevent_test

// These tests post Events to a REAL etcd and kube-apiserver started on
// loopback (internal/kubetest; binaries from hack/kube-bins.sh), as the
// agent does in a pod: a service account directory with a token minted for
// the shipped ServiceAccount, the API server's CA, and
// KUBERNETES_SERVICE_HOST/PORT. The RBAC is the shipped one: the objects of
// deploy/manifests/podwarden.yaml (the chart rendered with its defaults,
// kept in step by deploy/helm's golden test) are applied for real.

import (
	"context"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"podwarden/internal/kubeevent"
	"podwarden/internal/kubetest"
	"podwarden/internal/oomreport"
	"podwarden/internal/syncbuf"
)

const (
	manifestPath = "../../deploy/manifests/podwarden.yaml"
	releaseNS    = "podwarden-system"
)

func TestAPIServer(t *testing.T) {
	srv := kubetest.Start(t)
	ctx := t.Context()
	admin := srv.Admin(t)
	manifest, err := os.ReadFile(manifestPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := kubetest.Apply(ctx, srv.Config(kubetest.AdminToken), manifest, false); err != nil {
		t.Fatalf("applying %s: %v", manifestPath, err)
	}
	agentCfg := srv.ServiceAccountConfig(ctx, t, releaseNS, "podwarden")

	t.Run("events with the chart's RBAC", func(t *testing.T) {
		srv.EnsureNamespace(ctx, t, "ml")
		pod, err := admin.CoreV1().Pods("ml").Create(ctx, testPod("ml", "nb-0", ""), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		logs := &syncbuf.Buffer{}
		r, err := kubeevent.NewReporter(ctx, inCluster(t, srv, agentCfg), "node-a", slog.New(slog.NewTextHandler(logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		obs := &drops{}
		r.Observe(obs)

		// An OOM storm in one pod: 50 identical reports.
		o := kubeevent.OOM{Namespace: "ml", PodName: "nb-0", PodUID: string(pod.UID), Container: "notebook",
			Comm: "python", PID: 1234, Kind: oomreport.KindNode, AnonRSSBytes: 7_623_000_000}
		for range 50 {
			if err := r.PodOOM(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		// The correlator lets 10 (the per-object burst) through as one
		// Event whose count is patched up to 10; the rest are dropped.
		evs := waitEvents(ctx, t, admin, "ml", kubeevent.ReasonOOMKilledProcess, func(e []corev1.Event) bool {
			return len(e) > 1 || len(e) == 1 && e[0].Count >= 10
		})
		if len(evs) != 1 || evs[0].Count != 10 {
			t.Errorf("50 identical reports -> %d Events (first count %d), want 1 with count 10", len(evs), evs[0].Count)
		}
		e := evs[0]
		if e.Message != kubeevent.PodMessage(o) || e.InvolvedObject.UID != pod.UID || e.InvolvedObject.FieldPath != "spec.containers{notebook}" ||
			e.Type != corev1.EventTypeWarning || e.Source.Host != "node-a" || e.ReportingController != kubeevent.Component {
			t.Errorf("event %+v", e)
		}
		t.Logf("50 identical reports -> %d Event, count %d", len(evs), e.Count)

		// A storm of different kills (new pids) on another pod: combined.
		pod2, err := admin.CoreV1().Pods("ml").Create(ctx, testPod("ml", "nb-1", ""), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 50 {
			o := o
			o.PodName, o.PodUID, o.PID = "nb-1", string(pod2.UID), 2000+i
			if err := r.PodOOM(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		evs = waitEvents(ctx, t, admin, "ml", kubeevent.ReasonOOMKilledProcess, func(e []corev1.Event) bool {
			n := 0
			for _, x := range e {
				if x.InvolvedObject.Name == "nb-1" && x.Count >= 2 {
					n++
				}
			}
			return n > 0
		})
		var objs, total int
		for _, x := range evs {
			if x.InvolvedObject.Name == "nb-1" {
				objs++
				total += int(x.Count)
			}
		}
		if objs > 12 {
			t.Errorf("50 distinct kills -> %d Event objects; the correlator should combine them", objs)
		}
		t.Logf("50 distinct kills -> %d Event objects (sum of counts %d)", objs, total)

		// A replaced pod (same name, new UID) gets nothing.
		if err := r.PodOOM(ctx, kubeevent.OOM{Namespace: "ml", PodName: "nb-0", PodUID: "0000-old", Comm: "x"}); err != nil {
			t.Fatal(err)
		}
		obs.wait(t, kubeevent.DropPodGone)

		// Node OOM: an Event on the Node, in "default", kubelet-style UID.
		if err := r.NodeOOM(ctx, kubeevent.OOM{Kind: oomreport.KindNode, HostVictims: []string{"sshd (pid 812)"}}); err != nil {
			t.Fatal(err)
		}
		nev := waitEvents(ctx, t, admin, "default", kubeevent.ReasonHostOOMKill, func(e []corev1.Event) bool { return len(e) == 1 })[0]
		if nev.InvolvedObject.Kind != "Node" || nev.InvolvedObject.Name != "node-a" || nev.InvolvedObject.UID != "node-a" {
			t.Errorf("node event %+v", nev.InvolvedObject)
		}
		// internal/preempt's Event: a Warning naming process, size,
		// pressure and why; a dry run is Normal.
		k := kubeevent.PressureKill{Namespace: "ml", PodName: "nb-0", PodUID: string(pod.UID), Container: "notebook",
			Comm: "python3", PID: 812, RSSBytes: 412 << 20, Signals: []string{"SIGINT", "SIGTERM"}, Scope: kubeevent.ScopeNode,
			Available: 35 << 20, Total: 708 << 20, StallPct: 38, Why: "container notebook grew 380 MiB in 30s"}
		if err := r.PodPressureKill(ctx, k); err != nil {
			t.Fatal(err)
		}
		pev := waitEvents(ctx, t, admin, "ml", kubeevent.ReasonPressureKill, func(e []corev1.Event) bool { return len(e) == 1 })[0]
		if pev.Message != kubeevent.PressureMessage(k) || pev.Type != corev1.EventTypeWarning || pev.InvolvedObject.UID != pod.UID ||
			pev.InvolvedObject.FieldPath != "spec.containers{notebook}" {
			t.Errorf("pressure event %+v", pev)
		}
		k.Outcome = kubeevent.OutcomeDryRun
		if err := r.PodPressureKill(ctx, k); err != nil {
			t.Fatal(err)
		}
		dev := waitEvents(ctx, t, admin, "ml", kubeevent.ReasonPressureKillDryRun, func(e []corev1.Event) bool { return len(e) == 1 })[0]
		if dev.Type != corev1.EventTypeNormal {
			t.Errorf("dry-run event type %q, want Normal", dev.Type)
		}
		t.Logf("pressure Event: %s", pev.Message)
		// A refusal at node scope: an Event on the Node says why.
		nk := kubeevent.PressureKill{Scope: kubeevent.ScopeNode, Available: 35 << 20, Total: 708 << 20, StallPct: -1,
			Outcome: kubeevent.OutcomeNotActed, Why: "shmem: it grew 300 MiB in the last 10s, 290 MiB of it shmem or tmpfs (/dev/shm)"}
		if err := r.NodePressure(ctx, nk); err != nil {
			t.Fatal(err)
		}
		rev := waitEvents(ctx, t, admin, "default", kubeevent.ReasonPressureNotActed, func(e []corev1.Event) bool { return len(e) == 1 })[0]
		if rev.InvolvedObject.Kind != "Node" || rev.InvolvedObject.Name != "node-a" || rev.Message != kubeevent.PressureMessage(nk) ||
			rev.Type != corev1.EventTypeWarning {
			t.Errorf("node refusal event %+v", rev)
		}
		t.Logf("node refusal Event: %s", rev.Message)
		if s := logs.String(); s != "" {
			t.Logf("reporter log:\n%s", s)
		}
	})

	t.Run("missing permission is visible", func(t *testing.T) {
		// The same reporter with a ServiceAccount that has no RBAC: the
		// UID check fails with Forbidden instead of attaching blindly.
		if _, err := admin.CoreV1().ServiceAccounts(releaseNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "nobody"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		nobodyCfg := srv.ServiceAccountConfig(ctx, t, releaseNS, "nobody")
		r, err := kubeevent.NewReporter(ctx, inCluster(t, srv, nobodyCfg), "node-a", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		pod, err := admin.CoreV1().Pods("ml").Get(ctx, "nb-0", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		obs := &drops{}
		r.Observe(obs)
		if err := r.PodOOM(ctx, kubeevent.OOM{Namespace: "ml", PodName: "nb-0", PodUID: string(pod.UID), Comm: "python"}); err != nil {
			t.Fatal(err)
		}
		obs.wait(t, kubeevent.DropAPIError)
		obs.mu.Lock()
		defer obs.mu.Unlock()
		if obs.err == nil || !strings.Contains(obs.err.Error(), "403") {
			t.Errorf("call error %v, want the API server's 403", obs.err)
		}
		t.Logf("without RBAC: %v", obs.err)
	})
}

// inCluster writes the service account directory the kubelet would mount
// for a pod running as cfg's token, and returns the reporter's config read
// from it the way the agent reads it. The CA is the API server's own
// (self-signed for this run), so TLS is verified for real.
func inCluster(t *testing.T, srv *kubetest.Server, cfg *rest.Config) kubeevent.Config {
	t.Helper()
	dir := t.TempDir()
	ca, err := os.ReadFile(filepath.Join(srv.Dir, "certs", "apiserver.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(cfg.BearerToken), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"KUBERNETES_SERVICE_HOST": u.Hostname(), "KUBERNETES_SERVICE_PORT": u.Port()}
	kc, err := kubeevent.InCluster(dir, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

// drops is the reporter's Observer here: what it dropped, and the last
// call's error.
type drops struct {
	mu  sync.Mutex
	n   map[kubeevent.DropReason]int
	err error
}

func (d *drops) Calling(string) {}

func (d *drops) Called(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.err = err
	}
}

func (d *drops) Dropped(r kubeevent.DropReason) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n == nil {
		d.n = map[kubeevent.DropReason]int{}
	}
	d.n[r]++
}

// wait waits for a drop for reason.
func (d *drops) wait(t *testing.T, reason kubeevent.DropReason) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		d.mu.Lock()
		n := d.n[reason]
		d.mu.Unlock()
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s drop; drops %v", reason, d.n)
		}
	}
}

func testPod(ns, name, uid string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid)},
		Spec: corev1.PodSpec{
			Containers:     []corev1.Container{{Name: "notebook", Image: "jupyter"}},
			InitContainers: []corev1.Container{{Name: "setup", Image: "busybox"}},
		},
	}
}

// waitEvents polls until the Events in ns that match reason satisfy done,
// because the reporter writes in the background.
func waitEvents(ctx context.Context, t *testing.T, c kubernetes.Interface, ns, reason string, done func([]corev1.Event) bool) []corev1.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		list, err := c.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil && ctx.Err() == nil {
			t.Fatalf("listing events: %v", err)
		}
		var evs []corev1.Event
		if list != nil {
			for _, e := range list.Items {
				if e.Reason == reason {
					evs = append(evs, e)
				}
			}
		}
		if done(evs) {
			return evs
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s Events in %s; have %+v", reason, ns, evs)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
