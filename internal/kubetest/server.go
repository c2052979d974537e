package kubetest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Versions of the binaries hack/kube-bins.sh builds; the file names carry
// them so a version bump never runs a stale binary.
const (
	KubeVersion = "v1.37.2"
	EtcdVersion = "v3.6.5"
)

// AdminToken authenticates as a member of system:masters.
const AdminToken = "podwarden-test-admin"

// User is an extra static-token user (the token file is read once at start).
type User struct {
	Token, Name string
	Groups      []string
}

// Server is a running etcd + kube-apiserver pair.
type Server struct {
	// URL is the API server's https address on 127.0.0.1.
	URL string
	// Dir holds the logs, keys and etcd data.
	Dir string
	// CertFile is the API server's self-signed serving certificate with
	// its CA (the CA clients verify against, published as
	// kube-root-ca.crt by the controller manager).
	CertFile string
	// SAKeyFile is the service-account signing key.
	SAKeyFile string
	// APIServerPID and EtcdPID are the processes' IDs, for tests that
	// measure what a client costs the server (ProcessCPU).
	APIServerPID, EtcdPID int
}

// Options configure the API server beyond the defaults Start uses.
type Options struct {
	// Users are extra static-token users (the token file is read once).
	Users []User
	// ServiceCIDR is --service-cluster-ip-range (default 10.0.0.0/24). Its
	// first address is the kubernetes Service's IP, which the serving
	// certificate carries.
	ServiceCIDR string
	// Nodes prepares the server for real kubelets: the Node authorizer
	// before RBAC, --allow-privileged, and node addresses tried InternalIP
	// first.
	Nodes bool
	// EgressUDS, when set, sends the server's traffic to nodes and pods
	// (kubelet exec/logs, the pod proxy) as HTTP CONNECT over this unix
	// socket (EgressSelectorConfiguration "cluster"), so a test can reach
	// nodes the host has no route to.
	EgressUDS string
}

// Bins returns the paths of kube-apiserver and etcd: from
// $PODWARDEN_KUBE_BIN_DIR, else <repo>/.cache/kube where hack/kube-bins.sh
// puts them by default, else /var/cache/podwarden/kube where make deps
// does.
func Bins() (apiserver, etcd string, err error) {
	if apiserver, err = Bin("kube-apiserver"); err != nil {
		return "", "", err
	}
	if etcd, err = Bin("etcd"); err != nil {
		return "", "", err
	}
	return apiserver, etcd, nil
}

// Bin returns the path of one component hack/kube-bins.sh builds
// (kube-apiserver, etcd, kubelet, kube-controller-manager, kube-scheduler),
// or an error saying how to build it.
func Bin(component string) (string, error) {
	dir := os.Getenv("PODWARDEN_KUBE_BIN_DIR")
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, ".cache", "kube")
		if _, err := os.Stat(filepath.Join(dir, "kube-apiserver-"+KubeVersion)); err != nil {
			dir = "/var/cache/podwarden/kube"
		}
	}
	version, build := KubeVersion, "hack/kube-bins.sh "+component
	if component == "etcd" {
		version = EtcdVersion
	}
	if component == "kube-apiserver" || component == "etcd" {
		build = "hack/kube-bins.sh (make deps does; about 5 minutes on 2 cores)"
	}
	b := filepath.Join(dir, component+"-"+version)
	if _, err := os.Stat(b); err != nil {
		return "", fmt.Errorf("%s missing: run %s: %w", b, build, err)
	}
	return b, nil
}

// repoRoot finds the module root from the working directory (go test runs
// in the package directory).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the repository: %w", err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(b), "module podwarden\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no podwarden go.mod above the working directory")
		}
		dir = parent
	}
}

// Start runs etcd and kube-apiserver for the test and stops them in its
// cleanup. It skips under -short and fails, saying how to build them, when
// the binaries are missing.
func Start(t testing.TB, users ...User) *Server {
	t.Helper()
	return StartWith(t, Options{Users: users})
}

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: not starting kube-apiserver")
	}
	apiserverBin, etcdBin, err := Bins()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	client, peer := freeAddr(t), freeAddr(t)
	etcd := start(t, ctx, dir, etcdBin, "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", "http://"+client, "--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", "http://"+peer, "--initial-advertise-peer-urls", "http://"+peer,
		"--initial-cluster", "default=http://"+peer, "--unsafe-no-fsync", "--log-level", "warn")

	if err := writeKeys(dir); err != nil {
		t.Fatal(err)
	}
	tokens := fmt.Sprintf("%s,admin,admin,system:masters\n", AdminToken)
	for _, u := range o.Users {
		tokens += fmt.Sprintf("%s,%s,%s,%q\n", u.Token, u.Name, u.Name, strings.Join(u.Groups, ","))
	}
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(tokens), 0o600); err != nil {
		t.Fatal(err)
	}
	secure := freeAddr(t)
	_, port, _ := net.SplitHostPort(secure)
	cidr := o.ServiceCIDR
	if cidr == "" {
		cidr = "10.0.0.0/24"
	}
	args := []string{"--etcd-servers=http://" + client,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none", "--secure-port=" + port,
		"--cert-dir=" + filepath.Join(dir, "certs"), "--service-cluster-ip-range=" + cidr,
		"--token-auth-file=" + filepath.Join(dir, "tokens.csv"),
		"--service-account-key-file=" + filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(dir, "sa.key"),
		"--service-account-issuer=https://podwarden.test"}
	if o.Nodes {
		args = append(args, "--authorization-mode=Node,RBAC", "--allow-privileged=true",
			"--kubelet-preferred-address-types=InternalIP,Hostname")
	} else {
		args = append(args, "--authorization-mode=RBAC")
	}
	if o.EgressUDS != "" {
		cfg := filepath.Join(dir, "egress.yaml")
		if err := os.WriteFile(cfg, []byte(egressConfig(o.EgressUDS)), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--egress-selector-config-file="+cfg)
	}
	apiserver := start(t, ctx, dir, apiserverBin, args...)
	s := &Server{URL: "https://" + secure, Dir: dir,
		CertFile:     filepath.Join(dir, "certs", "apiserver.crt"),
		SAKeyFile:    filepath.Join(dir, "sa.key"),
		APIServerPID: apiserver.Process.Pid, EtcdPID: etcd.Process.Pid}
	if err := s.waitReady(ctx, 90*time.Second); err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "kube-apiserver.log"))
		t.Fatalf("%v\n%s", err, b[max(0, len(b)-3000):])
	}
	return s
}

// Config returns a client config that authenticates with token. The API
// server's certificate is self-signed for this run, hence Insecure.
func (s *Server) Config(token string) *rest.Config {
	return &rest.Config{
		Host:            s.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		QPS:             100,
		Burst:           200,
	}
}

// Admin returns a clientset for system:masters.
func (s *Server) Admin(t testing.TB) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(s.Config(AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ServiceAccountConfig mints a token for namespace/name with TokenRequest
// (as the kubelet does for a pod) and returns a config using it, so the
// client has exactly the RBAC bound to that ServiceAccount. The
// ServiceAccount must exist.
func (s *Server) ServiceAccountConfig(ctx context.Context, t testing.TB, namespace, name string) *rest.Config {
	t.Helper()
	exp := int64(3600)
	tr, err := s.Admin(t).CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s/%s: %v", namespace, name, err)
	}
	return s.Config(tr.Status.Token)
}

// EnsureNamespace creates a namespace and its "default" ServiceAccount
// unless they exist. Without a controller manager nobody else creates the
// ServiceAccount, and the ServiceAccount admission plugin refuses pods
// without it.
func (s *Server) EnsureNamespace(ctx context.Context, t testing.TB, name string) {
	t.Helper()
	admin := s.Admin(t)
	_, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	_, err = admin.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating %s/default ServiceAccount: %v", name, err)
	}
}

func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rt, err := rest.TransportFor(s.Config(AdminToken))
	if err != nil {
		return fmt.Errorf("client transport: %w", err)
	}
	c := &http.Client{Transport: rt, Timeout: 5 * time.Second}
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/readyz", nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/readyz: %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube-apiserver not ready after %s: %w", timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func egressConfig(uds string) string {
	return `apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: ` + uds + "\n"
}

// writeKeys writes the service-account signing key pair TokenRequest needs.
func writeKeys(dir string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("service-account key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return fmt.Errorf("service-account key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600)
}

// freeAddr returns a loopback address nobody listens on right now. The
// port could be taken before the server binds it; the readiness wait
// then fails with the server's log, which says so.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func start(t testing.TB, ctx context.Context, dir, bin string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	name := strings.SplitN(filepath.Base(bin), "-v", 2)[0]
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Die with the test binary, even when it is killed without running
	// its cleanups (go test's -timeout, a signal).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	// Cleanups run last-in first-out: the API server stops before etcd.
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
	})
	return cmd
}
