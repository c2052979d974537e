package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"podwarden/internal/kubetest"
)

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
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
	srv := kubetest.Start(t)
	host, lf := setup(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	k := &kube{base: srv.URL, token: kubetest.AdminToken, c: &http.Client{
		Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}}

	// The webhook, over TLS on loopback.
	cert, tlsKey, _ := selfSigned(t, dir)
	hook := freePort(t)
	go func() {
		cmd := newImageCmd(streams{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard})
		cmd.SetArgs([]string{"webhook", "-f", lf, "--listen", hook, "--tls-cert", cert, "--tls-key", tlsKey, "--budget", "5s", "--all-repositories"})
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
