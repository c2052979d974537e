package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"podwarden/internal/kubetest"
	"podwarden/internal/status"
)

func TestWriteStatusTable(t *testing.T) {
	st := status.Cluster{
		Namespace: "podwarden-system",
		Agents: []status.Agent{
			{Node: "node-a", Pod: "podwarden-x1", Ready: true, Metrics: &status.AgentMetrics{
				ProtectedContainers: 3, ProtectedProcesses: 41, OOMKillsTotal: 4, DriftRepairsTotal: 5,
				OOMKills: []status.OOMKillCount{{Namespace: "ml", Pod: "nb-0", Container: "notebook", Kind: "node", Count: 4},
					{Kind: "host", Count: 1}},
				ProtectedPods: []string{"ml/nb-0"},
			}},
			{Node: "node-b", Pod: "podwarden-x2", Restarts: 3, Error: "reading /metrics through the API server proxy: connection refused"},
		},
		NodesWithoutAgent: []string{"node-c"},
	}
	var out bytes.Buffer
	if err := writeStatus(&out, st, false); err != nil {
		t.Fatal(err)
	}
	want := `NODE    AGENT         READY  RESTARTS  PROTECTED  PROCESSES  OOM KILLS  DRIFT REPAIRS  ERRORS
node-a  podwarden-x1  yes    0         3          41         4          5              0
node-b  podwarden-x2  no     3         -          -          -          -              -

Protected pods:
NODE    PODS
node-a  ml/nb-0

OOM kills in target pods, and of host processes in node OOMs (since each agent started):
NODE    POD      CONTAINER  KIND  KILLS
node-a  ml/nb-0  notebook   node  4
node-a  -        -          host  1

Agents whose metrics could not be read:
  node-b (podwarden-x2): reading /metrics through the API server proxy: connection refused

Nodes without an agent (1): node-c
`
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	if err := writeStatus(&out, st, true); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"NODE    AGENT", "NODE    PODS", "NODE    POD "} {
		if strings.Contains(out.String(), h) {
			t.Errorf("--no-headers printed %q:\n%s", h, out.String())
		}
	}
	if !strings.HasPrefix(out.String(), "node-a  podwarden-x1  yes") {
		t.Errorf("--no-headers:\n%s", out.String())
	}
}

// TestStatusAPIServer runs the command against a REAL kube-apiserver
// (kubetest) with the chart's manifests applied and a user bound to the
// chart's viewer ClusterRoles. Real: kubeconfig loading, pod listing, RBAC
// and the API server's pod proxy. Faked, because nothing runs pods here:
// the agent pods' status (phase, readiness, pod IP) is written by the test,
// and node-a's "agent" is an HTTP server in the test serving fixture
// metrics. The proxy refuses loopback pod IPs, so that server listens on
// this machine's first non-loopback address (traffic to it stays local);
// without one, node-a's part is skipped. node-b's pod has that address and
// a port nobody listens on, so the real proxy fails for it: the command
// must report that and go on. node-c has no agent pod.
func TestStatusAPIServer(t *testing.T) {
	const viewerToken, strangerToken = "alice-token", "bob-token"
	srv := kubetest.Start(t,
		kubetest.User{Token: viewerToken, Name: "alice", Groups: []string{"sre"}},
		kubetest.User{Token: strangerToken, Name: "bob"})
	ctx := t.Context()
	admin := srv.Admin(t)
	installChart(t, srv)

	// The fixture agent checks scrapes as the chart's agents do
	// (metrics.auth kubernetes): a token in the header the proxy
	// forwards, which the real API server says is the chart's
	// metrics-reader ServiceAccount's.
	const reader = "system:serviceaccount:podwarden-system:podwarden-metrics-reader"
	metricsIP, metricsPort := serveFixtureMetrics(t, func(r *http.Request) int {
		tok, ok := strings.CutPrefix(r.Header.Get("X-Podwarden-Authorization"), "Bearer ")
		if !ok || tok == "" {
			return http.StatusUnauthorized
		}
		tr, err := admin.AuthenticationV1().TokenReviews().Create(r.Context(),
			&authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: tok}}, metav1.CreateOptions{})
		if err != nil || !tr.Status.Authenticated {
			return http.StatusUnauthorized
		}
		if tr.Status.User.Username != reader {
			return http.StatusForbidden
		}
		return http.StatusOK
	})
	for _, n := range []string{"node-a", "node-b", "node-c"} {
		if _, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := admin.AppsV1().DaemonSets("podwarden-system").Get(ctx, "podwarden", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, node := range []string{"node-a", "node-b"} {
		tpl := ds.Spec.Template.DeepCopy()
		pod := &corev1.Pod{ObjectMeta: tpl.ObjectMeta, Spec: tpl.Spec}
		pod.Name, pod.Spec.NodeName = "podwarden-"+node, node
		port := metricsPort
		if node == "node-b" {
			port = closedPort(t)
		}
		if metricsIP != "" {
			pod.Spec.Containers[0].Ports[0].ContainerPort = int32(port)
		}
		created, err := admin.CoreV1().Pods("podwarden-system").Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if metricsIP != "" {
			created.Status.Phase = corev1.PodRunning
			created.Status.PodIP, created.Status.PodIPs = metricsIP, []corev1.PodIP{{IP: metricsIP}}
			ready := corev1.ConditionFalse
			if node == "node-a" {
				ready = corev1.ConditionTrue
			}
			created.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}}
			if _, err := admin.CoreV1().Pods("podwarden-system").UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}

	kubeconfig := func(token string) string { return statusKubeconfig(t, srv, token) }
	runStatusCmd := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		cmd := newStatusCmd(streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
		cmd.SetArgs(args)
		cmd.SetOut(&out)
		cmd.SetErr(&errOut)
		err := cmd.ExecuteContext(ctx)
		return out.String(), err
	}

	t.Run("viewer", func(t *testing.T) {
		out, err := runStatusCmd("--kubeconfig", kubeconfig(viewerToken), "-o", "json", "--timeout", "3s")
		if err != nil {
			t.Fatal(err)
		}
		var st status.Cluster
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		validateStatusSchema(t, []byte(out))
		if len(st.Agents) != 2 || strings.Join(st.NodesWithoutAgent, ",") != "node-c" || len(st.Warnings) != 0 {
			t.Fatalf("status %+v", st)
		}
		a, b := st.Agents[0], st.Agents[1]
		if names, err := runStatusCmd("--kubeconfig", kubeconfig(viewerToken), "-o", "name", "--timeout", "3s"); err != nil ||
			names != "pod/"+a.Pod+"\npod/"+b.Pod+"\n" {
			t.Errorf("-o name: %v %q", err, names)
		}
		if yml, err := runStatusCmd("--kubeconfig", kubeconfig(viewerToken), "-o", "yaml", "--timeout", "3s"); err != nil ||
			!strings.HasPrefix(yml, "apiVersion: podwarden.dev/v1\nkind: ClusterStatus\n") ||
			!strings.Contains(yml, "\nagents:\n  - node: node-a\n    pod: "+a.Pod+"\n") {
			t.Errorf("-o yaml: %v\n%s", err, yml)
		}
		if b.Node != "node-b" || b.Metrics != nil || b.Error == "" {
			t.Errorf("node-b (nothing listening) should carry an error: %+v", b)
		}
		if metricsIP != "" && !strings.Contains(b.Error, "connection refused") {
			t.Errorf("node-b: %q, want the proxy's dial error", b.Error)
		}
		t.Logf("node-b: %s", b.Error)
		if metricsIP == "" {
			t.Log("no non-loopback address: node-a's metrics through the proxy not tested")
			return
		}
		if !a.Ready || a.Metrics == nil || a.Metrics.OOMKillsTotal != 5 || a.Metrics.ProtectedContainers != 3 {
			t.Errorf("node-a through the real proxy: %+v (metrics %+v)", a, a.Metrics)
		}
		table, err := runStatusCmd("--kubeconfig", kubeconfig(viewerToken))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("table:\n%s", table)
		if !strings.Contains(table, "node-a  podwarden-node-a  yes") || !strings.Contains(table, "Nodes without an agent (1): node-c") ||
			!strings.Contains(table, "Early kills: processes podwarden ended before the kernel's OOM killer") ||
			!regexp.MustCompile(`node-a +ml/nb-0 +notebook +node +SIGINT +2\n`).MatchString(table) ||
			strings.Contains(table, "dry-run") || !regexp.MustCompile(`node-a +shmem +1\n`).MatchString(table) ||
			!strings.Contains(table, "Of those, left alive") || !regexp.MustCompile(`node-a +SIGINT +2\n`).MatchString(table) {
			t.Errorf("table:\n%s", table)
		}
	})

	t.Run("no viewer role", func(t *testing.T) {
		_, err := runStatusCmd("--kubeconfig", kubeconfig(strangerToken))
		if err == nil || !strings.Contains(err.Error(), "forbidden") {
			t.Errorf("user without the viewer role: err %v, want forbidden", err)
		}
	})
}

// installChart applies the chart's manifests and binds its viewer roles to
// group sre, as the chart does with viewer.subjects.
func installChart(t *testing.T, srv *kubetest.Server) {
	t.Helper()
	ctx := t.Context()
	admin := srv.Admin(t)
	manifest, err := os.ReadFile("../../deploy/manifests/podwarden.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := kubetest.Apply(ctx, srv.Config(kubetest.AdminToken), manifest, false); err != nil {
		t.Fatal(err)
	}
	sre := []rbacv1.Subject{{Kind: "Group", Name: "sre", APIGroup: "rbac.authorization.k8s.io"}}
	if _, err := admin.RbacV1().RoleBindings("podwarden-system").Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "sre-viewer"}, Subjects: sre,
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "podwarden-viewer"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "sre-node-viewer"}, Subjects: sre,
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "podwarden-node-viewer"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	srv.EnsureNamespace(ctx, t, "podwarden-system")
}

// statusKubeconfig writes a kubeconfig for srv with token and returns its
// path.
func statusKubeconfig(t *testing.T, srv *kubetest.Server, token string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %q, insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: %q}}]
contexts: [{name: test, context: {cluster: test, user: u}}]
current-context: test
`, srv.URL, token)
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// serveFixtureMetrics serves internal/status's fixture on a non-loopback
// address of this machine to the requests auth answers 200, or returns ""
// if there is none.
func serveFixtureMetrics(t *testing.T, auth func(*http.Request) int) (string, int) {
	t.Helper()
	body, err := os.ReadFile("../../internal/status/testdata/agent-metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", 0
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.To4() == nil || !ipn.IP.IsGlobalUnicast() {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort(ipn.IP.String(), "0"))
		if err != nil {
			continue
		}
		s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/metrics" {
				http.NotFound(w, r)
				return
			}
			if code := auth(r); code != http.StatusOK {
				http.Error(w, http.StatusText(code), code)
				return
			}
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			_, _ = w.Write(body)
		})}
		go func() { _ = s.Serve(l) }()
		t.Cleanup(func() { _ = s.Close() })
		_, port, _ := net.SplitHostPort(l.Addr().String())
		p, _ := strconv.Atoi(port)
		return ipn.IP.String(), p
	}
	return "", 0
}

// closedPort returns a port on which nothing listens (just closed).
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestStatusKubeconfigErrors: without a usable kubeconfig, status names the
// files it tried (client-go alone says "try setting KUBERNETES_MASTER").
func TestStatusKubeconfigErrors(t *testing.T) {
	dir := t.TempDir()
	// client-go takes ~/.kube/config from $HOME when it starts.
	home := clientcmd.RecommendedHomeFile
	for _, tc := range []struct {
		name, kubeconfigEnv string
		args                []string
		want                []string
	}{
		{"nothing", "", nil, []string{"no kubeconfig: tried " + home + " ", "--kubeconfig or $KUBECONFIG"}},
		{"$KUBECONFIG of missing files", dir + "/a:" + dir + "/b", nil, []string{"tried " + dir + "/a, " + dir + "/b"}},
		{"--kubeconfig missing", "", []string{"--kubeconfig", dir + "/c"}, []string{"loading kubeconfig " + dir + "/c: ", "no such file"}},
		{"unknown context", "", []string{"--kubeconfig", "testdata/kubeconfig-one-context.yaml", "--context", "prod"}, []string{"loading kubeconfig testdata/kubeconfig-one-context.yaml: ", `"prod"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat(home); err == nil && tc.kubeconfigEnv == "" && tc.args == nil {
				t.Skipf("%s exists here", home)
			}
			t.Setenv("KUBECONFIG", tc.kubeconfigEnv)
			t.Setenv("KUBERNETES_SERVICE_HOST", "") // not in a pod
			var out, errOut bytes.Buffer
			cmd := newStatusCmd(streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
			cmd.SetArgs(tc.args)
			cmd.SetOut(&out)
			cmd.SetErr(&errOut)
			err := cmd.ExecuteContext(t.Context())
			if err == nil {
				t.Fatal("status without a kubeconfig succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "KUBERNETES_MASTER") {
				t.Errorf("error %q still points at KUBERNETES_MASTER", err)
			}
		})
	}
}

// TestStatusProgressLine: the progress line shows from a second into the
// reads, at most five times a second, and is cleared at the end; a quick
// status prints nothing, and neither does one whose stderr is not a
// terminal (a file, a pipe).
func TestStatusProgressLine(t *testing.T) {
	start := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		at   []time.Duration // when each agent is done
		want string
	}{
		{"quick", []time.Duration{100 * time.Millisecond, 900 * time.Millisecond}, ""},
		{"long", []time.Duration{500 * time.Millisecond, 1100 * time.Millisecond, 1200 * time.Millisecond, 1400 * time.Millisecond},
			"\r\x1b[Kreading agents: 2/4, 1 unreadable\r\x1b[Kreading agents: 4/4, 1 unreadable\r\x1b[K"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			now := start
			p := &progressLine{w: &buf, now: func() time.Time { return now }, start: start}
			for i, d := range tc.at {
				now = start.Add(d)
				p.update(status.Progress{Done: i + 1, Unreadable: min(i, 1), Total: len(tc.at)})
			}
			p.clear()
			if buf.String() != tc.want {
				t.Errorf("got %q, want %q", buf.String(), tc.want)
			}
		})
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, w := range []io.Writer{&bytes.Buffer{}, f} {
		if p := newProgressLine(w, time.Now); p.w != nil {
			t.Errorf("%T taken for a terminal", w)
		}
	}
}

// validateStatusSchema checks a status -o json document against
// docs/schemas/status.schema.json.
func validateStatusSchema(t *testing.T, doc []byte) {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	sch, err := c.Compile(filepath.Join("..", "..", "docs", "schemas", "status.schema.json"))
	if err != nil {
		t.Fatalf("compiling the status schema: %v", err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("not JSON: %v\n%s", err, doc)
	}
	if err := sch.Validate(v); err != nil {
		t.Errorf("status -o json does not match its schema: %v\n%s", err, doc)
	}
}
