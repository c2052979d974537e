package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"podwarden/internal/certtest"
)

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	certPEM, keyPEM := certtest.SelfSigned(t)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	os.WriteFile(certFile, certPEM, 0o600)
	os.WriteFile(keyFile, keyPEM, 0o600)
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return certFile, keyFile, pool
}

func TestImageWebhookTLS(t *testing.T) {
	host, lf := setup(t)
	cert, key, pool := selfSigned(t, t.TempDir())
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		cmd := newImageCmd(streams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}})
		cmd.SetArgs([]string{"webhook", "-f", lf, "--listen", addr, "--tls-cert", cert, "--tls-key", key, "--budget", "3s"})
		done <- cmd.ExecuteContext(ctx)
	}()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	for i := 0; ; i++ {
		resp, err := client.Get("https://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if i > 100 {
			t.Fatalf("webhook not up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","annotations":{"a":"b"}},"spec":{"containers":[{"name":"main","image":"` + host + `/pods/base:v2"}]}}`
	review := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"abc","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":` + pod + `}}`
	resp, err := client.Post("https://"+addr+"/mutate", "application/json", strings.NewReader(review))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Response struct {
			UID     string
			Allowed bool
			Patch   []byte
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	p := string(out.Response.Patch)
	if !out.Response.Allowed || out.Response.UID != "abc" ||
		!strings.Contains(p, `"path":"/spec/containers/0/image","value":"`+host+`/pods/base:v2-pw-`) ||
		!strings.Contains(p, `"path":"/metadata/annotations/podwarden.dev~1image-patch"`) {
		t.Errorf("response %+v, patch %s", out.Response, p)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("webhook exited with %v", err)
	}
}
