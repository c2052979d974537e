package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"podwarden/internal/agent"
	"podwarden/internal/certtest"
	"podwarden/internal/cgroup"
	"podwarden/internal/policy"
	"podwarden/internal/procfs"
)

// The metrics endpoint serves TLS with basic auth from an exporter-toolkit
// web config, as node_exporter does: no credentials, no metrics.
func TestMetricsTLSAndAuth(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := certtest.SelfSigned(t)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("tls.crt", string(certPEM))
	write("tls.key", string(keyPEM))
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := write("web.yml", "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\nbasic_auth_users:\n  prometheus: "+string(hash)+"\n")

	cg := t.TempDir()
	if err := os.WriteFile(filepath.Join(cg, "cgroup.controllers"), []byte("memory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pfs, _ := procfs.NewFS("/proc")
	cfs, _ := cgroup.NewFS(cg)
	pol := policy.Default()
	pol.CgroupSelector = "/none/*"
	a, err := agent.New(agent.Config{Policy: pol, Proc: pfs, Cgroups: cfs})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	agent.NewMetrics(reg)
	srv, addr, err := serveMetrics(t.Context(), "127.0.0.1:0", cfg, false, reg, a, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(scheme, user, pass string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, scheme+"://"+addr.String()+"/metrics", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		var resp *http.Response
		var err error
		for try := 0; try < 100; try++ { // the server goroutine may not be serving yet
			if resp, err = client.Do(req); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("https", "", ""); code != http.StatusUnauthorized {
		t.Errorf("no credentials: %d, want 401", code)
	}
	if code, _ := get("https", "prometheus", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong password: %d, want 401", code)
	}
	if code, body := get("https", "prometheus", "s3cret"); code != http.StatusOK || !strings.Contains(body, "podwarden_protected_containers") {
		t.Errorf("with credentials: %d %.200q", code, body)
	}
	if code, _ := get("http", "prometheus", "s3cret"); code == http.StatusOK {
		t.Errorf("plain HTTP answered 200 on a TLS endpoint")
	}
}

func TestWebConfigRefused(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(bad, []byte("tls_server_config:\n  cert_file: /nonexistent.crt\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--web-config-file", bad, "--metrics-addr", "127.0.0.1:0"}, "--web-config-file " + bad},
		{[]string{"--web-config-file", bad}, "--web-config-file needs --metrics-addr"},
	} {
		_, errOut := runAgentCmd(t, tc.args...)
		if !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: stderr %q does not name %q", tc.args, errOut, tc.want)
		}
	}
}
