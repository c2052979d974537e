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
	"podwarden/internal/metricsserver"
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

	o := metricsserver.DefaultOptions("127.0.0.1:0")
	o.WebConfigFile = cfg
	addr := startMetrics(t, o, nil)

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	get := func(scheme, user, pass string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, scheme+"://"+addr+"/metrics", nil)
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
		// HTTP/1.1 even to a client that offers HTTP/2: the connection
		// bound counts connections, and an HTTP/2 one carries 250 requests.
		if resp.ProtoMajor != 1 {
			t.Errorf("%s: served over %s, want HTTP/1.1", scheme, resp.Proto)
		}
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

func TestMetricsFlagsRefused(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
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
		{[]string{"--metrics-auth", "basic"}, `--metrics-auth "basic": want none or kubernetes`},
		{[]string{"--metrics-max-connections", "0"}, "max connections 0"},
		{[]string{"--metrics-max-connections", "100000"}, "max connections 100000: want 1..4096"},
		{[]string{"--metrics-idle-timeout", "0"}, "idle timeout 0s"},
		{[]string{"--metrics-write-timeout", "-1s"}, "write timeout -1s"},
		{[]string{"--metrics-read-timeout", "24h"}, "read timeout 24h0m0s"},
		// Outside a pod there is no API server to check tokens with:
		// refused at start, not a server that answers every scrape 503.
		{[]string{"--no-cri", "--cgroup-selector", "/podwarden-none/*", "--metrics-addr", "127.0.0.1:0", "--metrics-auth", "kubernetes"},
			"--metrics-auth kubernetes: not in a pod"},
	} {
		_, errOut := runAgentCmd(t, tc.args...)
		if !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: stderr %q does not name %q", tc.args, errOut, tc.want)
		}
	}
}

// startMetrics serves an agent with no targets (the test's own cgroup
// tree) through serveMetrics, as runAgent does, and returns the address.
func startMetrics(t *testing.T, o metricsserver.Options, auth *metricsserver.KubeAuth) string {
	t.Helper()
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
	srv, err := serveMetrics(t.Context(), o, auth, false, reg, a, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv.Addr().String()
}
