package nodetest

// TestNode boots a real Kubernetes node (kubelet v1.37.2, containerd
// v2.4.2, Debian's runc, the 6.1 kernel with cgroup v2) in the qemu guest,
// joins it to a loopback control plane, installs this tree's release from
// a registry (chart over OCI, image by digest), and runs issue 16's
// scenarios, early action (4b; 4c, a slow hog ended through PSI; 4d, a hog
// named jupyter-lab beside the server) and the upgrade from the previous
// release (6b), asserting on what a user sees (pod status, Events,
// `podwarden status`, metrics through the API server) and on the kernel's
// files in the guest. Scenarios 1-6b share one boot of node A (AppArmor
// on); scenario 7 boots node B with AppArmor off. `make test-node` runs it.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"podwarden/internal/kubetest"
	"podwarden/internal/vmtest"
)

const (
	nodeA     = "pw-node-a"
	nodeB     = "pw-node-b"
	release   = "podwarden"
	agentNS   = "podwarden-system"
	usersNS   = "users"
	agentName = "podwarden"
)

// cluster is the control plane and what the scenarios share.
type cluster struct {
	srv        *kubetest.Server
	admin      kubernetes.Interface
	adminCfg   *rest.Config
	kubeconfig string // admin, for Helm
	viewerKC   string // a user bound to the chart's viewer roles, for podwarden status
	egress     *Egress
	machine    vmtest.Machine
	bins       Bins
	art        Artifacts
	work       string
	repo       string
	tokens     map[string]string // node name -> kubelet token
	helm       helmClient
	cliDir     string // podwarden and podwarden-cluster built from this tree
	reg        *releaseRegistry
	rel        *builtRelease // this tree's release, pushed to reg
	prev       *prevRelease  // the previous release, pushed to reg
	disk       string        // the data disk image (DataDir in the guest)
	diskMods   []string      // its driver's and filesystem's modules
	// consoles is this run's directory of guest consoles, kept after the
	// run (a fixed name would be overwritten by the next run, or shared
	// by two at once).
	consoles string
}

var timings struct {
	sync.Mutex
	lines []string
}

func timing(format string, a ...any) {
	timings.Lock()
	defer timings.Unlock()
	timings.lines = append(timings.lines, fmt.Sprintf(format, a...))
}

func TestNode(t *testing.T) {
	if os.Getenv("PODWARDEN_NODETEST") == "" {
		t.Skip("the real-node test runs with make test-node (PODWARDEN_NODETEST=1): it builds kubelet and containerd and boots a 2 GiB guest")
	}
	t0 := time.Now()
	c := setupCluster(t)
	defer func() {
		timings.Lock()
		defer timings.Unlock()
		for _, l := range timings.lines {
			t.Log("TIMING " + l)
		}
		t.Logf("TIMING node test total %s", time.Since(t0).Round(time.Second))
	}()

	a := c.bootNode(t, nodeA, true)
	t.Run("1-without-podwarden", func(t *testing.T) { scenarioWithout(t, c, a) })
	t.Run("2-chart-protects", func(t *testing.T) { scenarioChart(t, c, a) })
	t.Run("3-container-limit", func(t *testing.T) { scenarioContainerLimit(t, c, a) })
	t.Run("4-node-oom", func(t *testing.T) { scenarioNodeOOM(t, c, a) })
	t.Run("4b-preempt", func(t *testing.T) { scenarioPreempt(t, c, a) })
	t.Run("4c-psi-slow-hog", func(t *testing.T) { scenarioPSISlowHog(t, c, a) })
	t.Run("4d-renamed-hog", func(t *testing.T) { scenarioRenamedHog(t, c, a) })
	t.Run("5-nri", func(t *testing.T) { scenarioNRI(t, c, a) })
	t.Run("6-upgrade-uninstall", func(t *testing.T) { scenarioUpgradeUninstall(t, c, a) })
	t.Run("6b-cross-version", func(t *testing.T) { scenarioCrossVersion(t, c, a) })
	c.stopNode(t, a, nodeA)
	b := c.bootNode(t, nodeB, false)
	t.Run("7-no-apparmor", func(t *testing.T) { scenarioNoAppArmor(t, c, b) })
}

func setupCluster(t *testing.T) *cluster {
	t.Helper()
	ctx := t.Context()
	c := &cluster{tokens: map[string]string{nodeA: "node-a-token", nodeB: "node-b-token"}}
	var err error
	if c.machine, err = vmtest.FindMachine(); err != nil {
		t.Fatalf("qemu guest: %v", err)
	}
	if c.bins, err = FindBins(c.machine.Kernel); err != nil {
		t.Fatalf("node binaries (make test-node builds them):\n%v", err)
	}
	if c.repo, err = repoRoot(); err != nil {
		t.Fatal(err)
	}
	c.work = t.TempDir()
	// The release (six cross-builds) builds while the rest is set up.
	c.reg = startRegistry(ctx, t, filepath.Join(c.work, "registry"))
	relDone := make(chan error, 1)
	go func() {
		start := time.Now()
		var err error
		c.rel, err = c.reg.buildRelease(ctx, c.repo, filepath.Join(c.work, "release"))
		if err == nil {
			timing("release %s built and pushed to %s in %s", releaseVersion, RegistryHost, time.Since(start).Round(100*time.Millisecond))
		}
		if err == nil {
			start = time.Now()
			c.prev, err = c.reg.buildPrevRelease(ctx, c.repo, filepath.Join(c.work, "prev"))
			if err == nil {
				timing("previous release (commit %s) built and pushed in %s", c.prev.commit, time.Since(start).Round(100*time.Millisecond))
			}
		}
		relDone <- err
	}()
	start := time.Now()
	if c.art, err = BuildArtifacts(ctx, c.repo, c.bins.Busybox, c.work); err != nil {
		t.Fatal(err)
	}
	c.cliDir = filepath.Join(c.work, "cli")
	for _, b := range []string{"podwarden", "podwarden-cluster"} {
		if err := goBuild(ctx, c.repo, "./cmd/"+b, filepath.Join(c.cliDir, b)); err != nil {
			t.Fatal(err)
		}
	}
	// 256 MiB of incompressible data: page cache that pods can churn
	// (scenario 4c).
	data := vmtest.Disk{Data: map[string]int64{}}
	for i := range 8 {
		data.Data[fmt.Sprintf("blob%d", i)] = 32 << 20
	}
	c.disk = filepath.Join(c.work, "data.img")
	if err := data.WriteImage(ctx, c.disk); err != nil {
		t.Fatalf("data disk: %v", err)
	}
	if c.diskMods, err = vmtest.Modules(c.bins.Modules, "virtio_pci", "virtio_blk", "crc32c_generic", "ext4"); err != nil {
		t.Fatalf("data disk modules: %v", err)
	}
	timing("images, binaries and data disk built in %s", time.Since(start).Round(100*time.Millisecond))

	// A short path: unix socket names are limited to 108 bytes.
	sockDir, err := os.MkdirTemp("", "pwn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	if c.egress, err = ListenEgress(filepath.Join(sockDir, "egress.sock")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.egress.Close() })

	users := []kubetest.User{{Token: "viewer-token", Name: "sre-alice", Groups: []string{"sre"}}}
	for n, tok := range c.tokens {
		users = append(users, kubetest.User{Token: tok, Name: "system:node:" + n, Groups: []string{"system:nodes"}})
	}
	start = time.Now()
	c.srv = kubetest.StartWith(t, kubetest.Options{Users: users, ServiceCIDR: ServiceCIDR, Nodes: true, EgressUDS: c.egress.Socket})
	c.srv.StartControllers(t)
	timing("control plane (etcd, kube-apiserver, controller-manager, scheduler) up in %s", time.Since(start).Round(100*time.Millisecond))
	c.admin = c.srv.Admin(t)
	c.adminCfg = c.srv.Config(kubetest.AdminToken)
	c.kubeconfig = filepath.Join(c.work, "admin.kubeconfig")
	if err := c.srv.Kubeconfig(c.kubeconfig, c.srv.URL, kubetest.AdminToken); err != nil {
		t.Fatal(err)
	}
	c.viewerKC = filepath.Join(c.work, "viewer.kubeconfig")
	if err := c.srv.Kubeconfig(c.viewerKC, c.srv.URL, "viewer-token"); err != nil {
		t.Fatal(err)
	}
	if err := <-relDone; err != nil {
		t.Fatal(err)
	}
	t.Logf("release %s: image %s, chart %s; previous (commit %s): image %s", releaseVersion, c.rel.pushed.Image, c.rel.pushed.Chart, c.prev.commit, c.prev.image)
	helmDir := filepath.Join(c.work, "helm")
	rc, err := c.reg.registryClient(helmDir)
	if err != nil {
		t.Fatal(err)
	}
	c.helm = helmClient{kubeconfig: c.kubeconfig, namespace: agentNS, chartRef: chartRef,
		version: strings.TrimPrefix(releaseVersion, "v"), registry: rc, settings: helmSettings(helmDir)}
	for _, ns := range []string{usersNS, agentNS} {
		nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
		if ns == agentNS {
			// As docs/kubernetes.md tells users: the agent needs the
			// privileged Pod Security level (host namespaces, host paths).
			nsObj.Labels = map[string]string{"pod-security.kubernetes.io/enforce": "privileged"}
		}
		if _, err := c.admin.CoreV1().Namespaces().Create(ctx, nsObj, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The ServiceAccount admission plugin refuses pods until the
	// controller manager has made the namespaces' default ServiceAccount.
	for _, ns := range []string{usersNS, "kube-system"} {
		if err := poll(ctx, 2*time.Minute, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
			_, err := c.admin.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
			return err == nil, nil
		}); err != nil {
			t.Fatalf("no default ServiceAccount in %s: %v", ns, err)
		}
	}
	return c
}

// bootNode writes the node's initramfs, boots it and waits for the Node to
// be Ready.
func (c *cluster) bootNode(t *testing.T, name string, apparmor bool) *Node {
	t.Helper()
	ctx := t.Context()
	kc := filepath.Join(c.work, name+".kubeconfig")
	if err := c.srv.Kubeconfig(kc, "https://"+ServiceIP+":443", c.tokens[name]); err != nil {
		t.Fatal(err)
	}
	kcb, err := os.ReadFile(kc)
	if err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(c.work, name+".cpio")
	start := time.Now()
	if err := WriteInitramfs(initrd, GuestConfig{Bins: c.bins, Artifacts: c.art, NodeName: name, Kubeconfig: kcb, DiskModules: c.diskMods}); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(initrd)
	timing("%s initramfs %d MB written in %s", name, st.Size()>>20, time.Since(start).Round(100*time.Millisecond))
	_, port, _ := strings.Cut(strings.TrimPrefix(c.srv.URL, "https://"), ":")
	if c.consoles == "" {
		if c.consoles, err = os.MkdirTemp("", "podwarden-nodetest-consoles-"); err != nil {
			t.Fatal(err)
		}
	}
	console := filepath.Join(c.consoles, name+".console")
	n, err := Boot(NodeConfig{Machine: c.machine, Initrd: initrd, Busybox: c.bins.Busybox, APIPort: port,
		RegistryPort: c.reg.port, Disk: c.disk, Console: console, AppArmor: apparmor})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	t.Logf("%s console: %s", name, console)
	c.egress.SetNode(n)
	for _, mark := range []string{"up", "containerd", "kubelet"} {
		d, err := n.WaitMark(ctx, mark)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		timing("%s: %s at %s after qemu start", name, mark, d.Round(100*time.Millisecond))
	}
	if err := n.WaitGuestd(ctx); err != nil {
		t.Fatal(err)
	}
	if err := poll(ctx, 5*time.Minute, time.Second, func(ctx context.Context) (bool, error) {
		nd, err := c.admin.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return nodeReady(nd), nil
	}); err != nil {
		out, _ := n.Sh(ctx, "tail -30 /var/log/kubelet.log")
		t.Fatalf("%s never Ready: %v\nkubelet log:\n%s", name, err, out)
	}
	timing("%s: Ready at %s after qemu start", name, time.Since(n.Started).Round(100*time.Millisecond))
	return n
}

func nodeReady(nd *corev1.Node) bool {
	for _, cnd := range nd.Status.Conditions {
		if cnd.Type == corev1.NodeReady {
			return cnd.Status == corev1.ConditionTrue
		}
	}
	return false
}

// stopNode powers the guest off and removes its Node, as an operator
// retiring a node would; its pods go with it.
func (c *cluster) stopNode(t *testing.T, n *Node, name string) {
	t.Helper()
	n.Stop()
	ctx := t.Context()
	if err := c.admin.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Errorf("deleting node %s: %v", name, err)
	}
	for _, ns := range []string{usersNS, "kube-system"} {
		zero := int64(0)
		pods, _ := c.admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + name})
		for _, p := range pods.Items {
			c.admin.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		}
	}
}
