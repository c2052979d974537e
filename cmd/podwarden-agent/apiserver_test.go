package main

// This test checks scrapes' tokens against a REAL etcd and kube-apiserver
// on loopback (internal/kubetest; binaries from hack/kube-bins.sh), with
// the RBAC the chart ships: deploy/manifests/podwarden.yaml (the chart
// rendered with its defaults, kept in step by deploy/helm's golden test)
// is applied for real, and the agent reviews tokens with its own
// ServiceAccount's token. It is skipped where the binaries are not built.

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"podwarden/internal/kubeevent"
	"podwarden/internal/kubetest"
	"podwarden/internal/metricsserver"
)

func TestMetricsAuthAPIServer(t *testing.T) {
	if _, _, err := kubetest.Bins(); err != nil {
		t.Skip(err)
	}
	sre := kubetest.User{Token: "sre-token", Name: "sre"}
	srv := kubetest.Start(t, sre)
	ctx := t.Context()
	admin := srv.Admin(t)
	manifest, err := os.ReadFile("../../deploy/manifests/podwarden.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := kubetest.Apply(ctx, srv.Config(kubetest.AdminToken), manifest, false); err != nil {
		t.Fatalf("applying the shipped manifest: %v", err)
	}
	const ns = "podwarden-system"
	// A Prometheus with the metrics reader role bound (metrics.readers),
	// and a notebook's ServiceAccount with nothing.
	for _, sa := range []struct{ ns, name string }{{"monitoring", "prometheus"}, {"ml", "notebook"}} {
		srv.EnsureNamespace(ctx, t, sa.ns)
		if _, err := admin.CoreV1().ServiceAccounts(sa.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa.name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "prometheus-podwarden-metrics"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "podwarden-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "monitoring", Name: "prometheus"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	token := func(ns, name string) string { return srv.ServiceAccountConfig(ctx, t, ns, name).BearerToken }

	// A `podwarden status` user bound to the viewer role, as
	// viewer.subjects binds it, may mint a short-lived token of the
	// metrics reader (the pod proxy drops the user's own credentials),
	// and of no other ServiceAccount.
	_, err = admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "sre-viewer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "podwarden-viewer"},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: sre.Name}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	asSRE, err := kubernetes.NewForConfig(srv.Config(sre.Token))
	if err != nil {
		t.Fatal(err)
	}
	mint := func(name string) (string, error) {
		exp := int64(600)
		tr, err := asSRE.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name,
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
		if err != nil {
			return "", err
		}
		return tr.Status.Token, nil
	}
	// The API server's RBAC authorizer learns of the binding just made
	// through its informers: a first request can still be refused (seen
	// once in a CI rehearsal). Forbidden is retried for a generous while;
	// any other error, or Forbidden past it, fails.
	statusToken, err := mint("podwarden-metrics-reader")
	for deadline := time.Now().Add(60 * time.Second); apierrors.IsForbidden(err) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		statusToken, err = mint("podwarden-metrics-reader")
	}
	if err != nil {
		t.Fatalf("viewer minting a metrics reader token: %v", err)
	}
	if _, err := mint("podwarden"); !apierrors.IsForbidden(err) {
		t.Errorf("viewer minting the agent's token: %v, want Forbidden", err)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(token(ns, "podwarden")), 0o600); err != nil {
		t.Fatal(err)
	}
	api, err := kubeevent.NewRESTClient(kubeevent.Config{Host: srv.URL, CAFile: srv.CertFile, TokenFile: filepath.Join(dir, "token")})
	if err != nil {
		t.Fatal(err)
	}
	auth := metricsserver.NewKubeAuth(api, metricsserver.AuthOptions{}, slog.New(slog.DiscardHandler))
	addr := startMetrics(t, metricsserver.DefaultOptions("127.0.0.1:0"), auth)

	for _, tc := range []struct {
		name, path, header, token string
		code                      int
	}{
		{"no token", "/metrics", "", "", http.StatusUnauthorized},
		{"forged token", "/metrics", "Authorization", "not-a-token", http.StatusUnauthorized},
		{"prometheus with the reader role", "/metrics", "Authorization", token("monitoring", "prometheus"), http.StatusOK},
		{"a notebook's ServiceAccount", "/metrics", "Authorization", token("ml", "notebook"), http.StatusForbidden},
		// What `podwarden status` can send through the pod proxy: a token
		// of the chart's metrics reader in the header the proxy forwards.
		{"the chart's metrics reader, proxy header", "/metrics", metricsserver.TokenHeader, token(ns, "podwarden-metrics-reader"), http.StatusOK},
		{"a viewer's minted token, proxy header", "/metrics", metricsserver.TokenHeader, statusToken, http.StatusOK},
		// The agent's own token may review others' but not read metrics.
		{"the agent's own ServiceAccount", "/metrics", "Authorization", token(ns, "podwarden"), http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+tc.path, nil)
			if tc.header != "" {
				req.Header.Set(tc.header, "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code || tc.code == http.StatusOK && !strings.Contains(string(b), "podwarden_protected_containers") {
				t.Errorf("%d %.200q, want %d", resp.StatusCode, b, tc.code)
			}
		})
	}
}
