package helm_test

// These tests run the rendered chart against a REAL etcd and kube-apiserver
// started on loopback (internal/kubetest; binaries from hack/kube-bins.sh).
// Real: validation, defaulting, admission (Priority, ServiceAccount, Pod
// Security) and RBAC. Absent: kubelet, scheduler and controllers, so the
// DaemonSet creates no pods. The Events the agent posts with the chart's
// RBAC are tested in internal/kubeevent.

import (
	"encoding/json"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"podwarden/internal/kubetest"
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
