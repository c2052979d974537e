package kube_test

// These tests run against a REAL etcd and kube-apiserver started on
// loopback (internal/kube/kubetest; binaries from hack/kube-bins.sh). Real:
// validation, defaulting, admission (Priority, ServiceAccount, Pod
// Security), RBAC, TokenRequest and the Events API. Absent: kubelet,
// scheduler and controllers, so pods are never run (they stay Pending) and
// the DaemonSet creates no pods; the agent's side is the kubeevent
// Reporter driven directly, configured as in a pod: a service account
// directory with a token minted for the chart's ServiceAccount and the API
// server's CA, and KUBERNETES_SERVICE_HOST/PORT.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"podwarden/internal/kube/kubetest"
	"podwarden/internal/kubeevent"
	"podwarden/internal/syncbuf"
)

func TestAPIServer(t *testing.T) {
	srv := kubetest.Start(t)
	ctx := t.Context()
	admin := srv.Admin(t)
	manifest := []byte(render(t, manifestValues()))

	t.Run("chart dry-run", func(t *testing.T) {
		// kubectl apply --dry-run=server needs the namespace to exist, as
		// it does here: create it for real, then dry-run everything.
		ns, err := kubetest.Decode(manifest)
		if err != nil || ns[0].GetKind() != "Namespace" {
			t.Fatalf("first object should be the Namespace: %v", err)
		}
		if err := kubetest.Apply(ctx, srv.Config(kubetest.AdminToken), mustYAML(t, ns[0].Object), false); err != nil {
			t.Fatal(err)
		}
		if err := kubetest.Apply(ctx, srv.Config(kubetest.AdminToken), manifest, true); err != nil {
			t.Fatalf("server dry-run refused the manifests: %v", err)
		}
		if _, err := admin.AppsV1().DaemonSets(releaseNS).Get(ctx, "podwarden", metav1.GetOptions{}); err == nil {
			t.Error("dry-run stored the DaemonSet")
		}
	})

	t.Run("chart apply", func(t *testing.T) {
		if err := kubetest.Apply(ctx, srv.Config(kubetest.AdminToken), manifest, false); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("agent pod admitted", func(t *testing.T) {
		// A DaemonSet's pods are created by its controller, which does not
		// run here: dry-run the pod it would create on a node, so priority
		// class (system-node-critical), Pod Security (privileged namespace),
		// the ServiceAccount and the security context go through the real
		// admission chain.
		ds, err := admin.AppsV1().DaemonSets(releaseNS).Get(ctx, "podwarden", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pod := podFromTemplate(ds, "node-a")
		got, err := admin.CoreV1().Pods(releaseNS).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatalf("agent pod refused: %v", err)
		}
		if got.Spec.Priority == nil || *got.Spec.Priority < 2_000_000_000 {
			t.Errorf("priority %v: system-node-critical not applied", got.Spec.Priority)
		}
	})

	agentCfg := srv.ServiceAccountConfig(ctx, t, releaseNS, "podwarden")
	agent, err := kubernetes.NewForConfig(agentCfg)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("agent RBAC is least privilege", func(t *testing.T) {
		for _, tc := range []struct {
			attr authorizationv1.ResourceAttributes
			want bool
		}{
			{authorizationv1.ResourceAttributes{Namespace: "ml", Verb: "create", Resource: "events"}, true},
			{authorizationv1.ResourceAttributes{Namespace: "default", Verb: "patch", Resource: "events"}, true},
			{authorizationv1.ResourceAttributes{Namespace: "ml", Verb: "get", Resource: "pods"}, true},
			{authorizationv1.ResourceAttributes{Namespace: "ml", Verb: "list", Resource: "pods"}, false},
			{authorizationv1.ResourceAttributes{Namespace: "ml", Verb: "delete", Resource: "pods"}, false},
			{authorizationv1.ResourceAttributes{Namespace: "ml", Verb: "get", Resource: "secrets"}, false},
			{authorizationv1.ResourceAttributes{Verb: "update", Resource: "nodes"}, false},
			{authorizationv1.ResourceAttributes{Namespace: "ml", Verb: "delete", Resource: "events"}, false},
		} {
			r, err := agent.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
				Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &tc.attr}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if r.Status.Allowed != tc.want {
				t.Errorf("%s %s in %q: allowed=%v, want %v", tc.attr.Verb, tc.attr.Resource, tc.attr.Namespace, r.Status.Allowed, tc.want)
			}
		}
	})

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

		// An OOM storm in one pod: 50 identical reports.
		o := kubeevent.OOM{Namespace: "ml", PodName: "nb-0", PodUID: string(pod.UID), Container: "notebook",
			Comm: "python", PID: 1234, Kind: kubeevent.KindNode, AnonRSSBytes: 7_623_000_000}
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
		if err := r.PodOOM(ctx, kubeevent.OOM{Namespace: "ml", PodName: "nb-0", PodUID: "0000-old", Comm: "x"}); err == nil {
			t.Error("report for a stale UID accepted")
		}

		// Node OOM: an Event on the Node, in "default", kubelet-style UID.
		if err := r.NodeOOM(ctx, kubeevent.OOM{Kind: kubeevent.KindNode, HostVictims: []string{"sshd (pid 812)"}}); err != nil {
			t.Fatal(err)
		}
		nev := waitEvents(ctx, t, admin, "default", kubeevent.ReasonHostOOMKill, func(e []corev1.Event) bool { return len(e) == 1 })[0]
		if nev.InvolvedObject.Kind != "Node" || nev.InvolvedObject.Name != "node-a" || nev.InvolvedObject.UID != "node-a" {
			t.Errorf("node event %+v", nev.InvolvedObject)
		}
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
		err = r.PodOOM(ctx, kubeevent.OOM{Namespace: "ml", PodName: "nb-0", PodUID: string(pod.UID), Comm: "python"})
		if err == nil {
			t.Fatal("no RBAC, yet PodOOM succeeded")
		}
		t.Logf("without RBAC: %v", err)
	})
}

// podFromTemplate is the pod the DaemonSet controller would create on node.
func podFromTemplate(ds *appsv1.DaemonSet, node string) *corev1.Pod {
	tpl := ds.Spec.Template.DeepCopy()
	pod := &corev1.Pod{ObjectMeta: tpl.ObjectMeta, Spec: tpl.Spec}
	pod.Name = fmt.Sprintf("%s-%s", ds.Name, node)
	pod.Namespace = ds.Namespace
	pod.Spec.NodeName = node
	return pod
}

func mustYAML(t *testing.T, obj map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(obj) // the manifest decoder reads JSON too
	if err != nil {
		t.Fatal(err)
	}
	return b
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
