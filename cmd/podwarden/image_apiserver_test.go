package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"podwarden/internal/kube/kubetest"
)

// kubeBins returns kube-apiserver and etcd, built by hack/kube-bins.sh
// (make deps), the same ones internal/kube's tests use.
func kubeBins(t *testing.T) (apiserver, etcd string) {
	apiserver, etcd, err := kubetest.Bins()
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	return apiserver, etcd
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startProc(t *testing.T, ctx context.Context, dir, bin string, args ...string) {
	cmd := exec.CommandContext(ctx, bin, args...)
	logf, _ := os.Create(filepath.Join(dir, filepath.Base(bin)+".log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logf.Close() })
}

// kube is a minimal client of the test API server.
type kube struct {
	base, token string
	c           *http.Client
}

func (k *kube) do(t *testing.T, method, path string, body any) (int, []byte, http.Header) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, k.base+path, r)
	req.Header.Set("Authorization", "Bearer "+k.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := k.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// TestImageWebhookAPIServer registers the webhook with a real
// kube-apiserver, which calls it over TLS on loopback when a Pod is
// created; the Pod read back has the patched image.
func TestImageWebhookAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	apiserverBin, etcdBin := kubeBins(t)
	host, lf := setup(t)
	dir, _ := os.MkdirTemp("", "pw-kube-")
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	client, peer := freePort(t), freePort(t)
	startProc(t, ctx, dir, etcdBin, "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", "http://"+client, "--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", "http://"+peer, "--initial-advertise-peer-urls", "http://"+peer,
		"--initial-cluster", "default=http://"+peer)

	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	os.WriteFile(filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
	os.WriteFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600)
	os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte("pw-test-token,admin,1,system:masters\n"), 0o600)
	secure := freePort(t)
	_, port, _ := net.SplitHostPort(secure)
	startProc(t, ctx, dir, apiserverBin, "--etcd-servers=http://"+client, "--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none", "--secure-port="+port,
		"--cert-dir="+filepath.Join(dir, "certs"), "--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=RBAC", "--token-auth-file="+filepath.Join(dir, "tokens.csv"),
		"--service-account-key-file="+filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(dir, "sa.key"),
		"--service-account-issuer=https://podwarden.test")
	k := &kube{base: "https://" + secure, token: "pw-test-token", c: &http.Client{
		Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, k.base+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+k.token)
		resp, err := k.c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "kube-apiserver.log"))
			t.Fatalf("kube-apiserver not ready: %v\n%s", err, b[max(0, len(b)-3000):])
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The webhook, over TLS on loopback.
	cert, tlsKey, _ := selfSigned(t, dir)
	hook := freePort(t)
	go func() {
		cmd := newImageCmd(streams{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard})
		cmd.SetArgs([]string{"webhook", "-l", lf, "--listen", hook, "--tls-cert", cert, "--tls-key", tlsKey, "--budget", "5s", "--all-repositories"})
		_ = cmd.ExecuteContext(ctx)
	}()
	caPEM, _ := os.ReadFile(cert)
	none, ignore := "NoneOnDryRun", "Ignore"
	timeout := 10
	code, body, _ := k.do(t, http.MethodPost, "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", map[string]any{
		"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
		"metadata": map[string]any{"name": "podwarden-image"},
		"webhooks": []any{map[string]any{
			"name": "image.podwarden.dev", "admissionReviewVersions": []string{"v1"},
			"sideEffects": none, "failurePolicy": ignore, "timeoutSeconds": timeout,
			"rules":        []any{map[string]any{"operations": []string{"CREATE"}, "apiGroups": []string{""}, "apiVersions": []string{"v1"}, "resources": []string{"pods"}}},
			"clientConfig": map[string]any{"url": "https://" + hook + "/mutate", "caBundle": base64.StdEncoding.EncodeToString(caPEM)},
		}},
	})
	if code != http.StatusCreated {
		t.Fatalf("creating webhook configuration: %d %s", code, body)
	}
	code, body, _ = k.do(t, http.MethodPost, "/api/v1/namespaces/default/serviceaccounts", map[string]any{
		"apiVersion": "v1", "kind": "ServiceAccount", "metadata": map[string]any{"name": "default"}})
	if code != http.StatusCreated && code != http.StatusConflict {
		t.Fatalf("creating service account: %d %s", code, body)
	}

	for name, tc := range map[string]struct {
		image, want, note, warning, query string
	}{
		"patched":       {host + "/pods/base:v1", host + "/pods/base:v1-pw-", "main: " + host + "/pods/base:v1 -> ", "", ""},
		"registry down": {"127.0.0.1:1/pods/base:v1", "127.0.0.1:1/pods/base:v1", "main: kept 127.0.0.1:1/pods/base:v1: ", "keeps unpatched image", ""},
		"dry run":       {host + "/pods/base:v2", host + "/pods/base:v2", "", "dry run: images are not patched", "?dryRun=All"},
	} {
		t.Run(name, func(t *testing.T) {
			// The webhook may need a moment to come up: the API server
			// ignores it until then (failurePolicy: Ignore), so retry.
			for i := 0; ; i++ {
				pod := map[string]any{"apiVersion": "v1", "kind": "Pod",
					"metadata": map[string]any{"name": fmt.Sprintf("p-%s-%d", strings.ReplaceAll(name, " ", "-"), i)},
					"spec": map[string]any{"automountServiceAccountToken": false,
						"containers": []any{map[string]any{"name": "main", "image": tc.image}}}}
				code, body, hdr := k.do(t, http.MethodPost, "/api/v1/namespaces/default/pods"+tc.query, pod)
				if code != http.StatusCreated {
					t.Fatalf("creating pod: %d %s", code, body)
				}
				var got struct {
					Metadata struct{ Annotations map[string]string }
					Spec     struct{ Containers []struct{ Image string } }
				}
				json.Unmarshal(body, &got)
				note := got.Metadata.Annotations["podwarden.dev/image-patch"]
				warned := len(hdr.Values("Warning")) > 0
				if note == "" && !warned && i < 20 {
					time.Sleep(250 * time.Millisecond)
					continue
				}
				if img := got.Spec.Containers[0].Image; !strings.HasPrefix(img, tc.want) {
					t.Errorf("image %s, want %s*", img, tc.want)
				}
				if !strings.HasPrefix(note, tc.note) || (tc.note == "" && note != "") {
					t.Errorf("annotation %q, want %q*", note, tc.note)
				}
				if tc.warning != "" && !strings.Contains(strings.Join(hdr.Values("Warning"), "\n"), tc.warning) {
					t.Errorf("warnings %v", hdr.Values("Warning"))
				}
				t.Logf("pod image %s; annotation %q", got.Spec.Containers[0].Image, note)
				return
			}
		})
	}
}
