package kubetest

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// Kubeconfig writes a kubeconfig to path that reaches the API server at
// url (s.URL from this host; another address from a guest that forwards to
// it) with token, verifying the server against s.CertFile.
func (s *Server) Kubeconfig(path, url, token string) error {
	ca, err := os.ReadFile(s.CertFile)
	if err != nil {
		return fmt.Errorf("reading the API server's certificate: %w", err)
	}
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: test
  user:
    token: %s
contexts:
- name: test
  context: {cluster: test, user: test}
current-context: test
`, url, b64(ca), token)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	return nil
}

// StartControllers runs kube-controller-manager (every controller: the
// DaemonSet controller creates the agent's pods, the service-account
// controllers the tokens' ServiceAccounts and kube-root-ca.crt) and
// kube-scheduler against the server, as system:masters, until the test
// ends. Both stop before the API server does.
func (s *Server) StartControllers(t testing.TB) {
	t.Helper()
	kcm, err := Bin("kube-controller-manager")
	if err != nil {
		t.Fatal(err)
	}
	sched, err := Bin("kube-scheduler")
	if err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(s.Dir, "admin.kubeconfig")
	if err := s.Kubeconfig(kc, s.URL, AdminToken); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	port := func() string {
		_, p, _ := net.SplitHostPort(freeAddr(t))
		return p
	}
	start(t, ctx, s.Dir, kcm, "--kubeconfig="+kc, "--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port="+port(),
		"--service-account-private-key-file="+s.SAKeyFile, "--root-ca-file="+s.CertFile,
		"--use-service-account-credentials=false", "--controllers=*",
		// Node lifecycle: a node the test stops is marked NotReady soon
		// after, and its pods are not evicted while the test looks at them.
		"--node-monitor-grace-period=40s")
	start(t, ctx, s.Dir, sched, "--kubeconfig="+kc, "--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port="+port())
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
