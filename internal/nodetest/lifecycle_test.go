package nodetest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Scenario 5: NRI. With containerd's NRI on and the chart's nri.enabled,
// a new container's first process is at 900 before it runs a single
// instruction.
func scenarioNRI(t *testing.T, c *cluster, n *Node) {
	ctx := t.Context()
	if err := c.helm.upgrade(ctx, t, release, map[string]any{"nri": map[string]any{"enabled": true}}); err != nil {
		t.Fatalf("helm upgrade --set nri.enabled=true: %v", err)
	}
	agent := c.agentPod(ctx, t, nodeA, 2)
	if err := poll(ctx, 2*time.Minute, 2*time.Second, func(ctx context.Context) (bool, error) {
		logs, err := podLogs(ctx, c.admin, agentNS, agent.Name, "nri")
		return strings.Contains(logs, "nri: synchronized"), err
	}); err != nil {
		t.Fatalf("the NRI plugin never synchronized with containerd: %v", err)
	}
	script := `read a < /proc/self/oom_score_adj; read g < /sys/fs/cgroup/memory.oom.group; echo "adj=$a group=$g"; sleep 1000000`
	createPod(ctx, t, c.admin, podSpec(usersNS, "nri-probe", nodeA, script, "", ""))
	p, err := waitRunning(ctx, c.admin, usersNS, "nri-probe", 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var logs string
	_ = poll(ctx, time.Minute, time.Second, func(ctx context.Context) (bool, error) {
		logs, err = podLogs(ctx, c.admin, usersNS, "nri-probe", "main")
		return strings.Contains(logs, "adj="), err
	})
	t.Logf("REPORT scenario 5: the entrypoint's first read: %s", strings.TrimSpace(logs))
	if !strings.Contains(logs, "adj=900 group=0") {
		t.Errorf("first process saw %q, want adj=900 group=0", strings.TrimSpace(logs))
	}
	spec, err := n.Sh(ctx, "ctr -n k8s.io containers info "+containerID(p, "main")+" | grep -E '\"oomScoreAdj\"|memory.oom.group'")
	t.Logf("REPORT scenario 5: the container's OCI spec (NRI adjusted): %s %v", strings.Join(strings.Fields(spec), " "), err)
	if !strings.Contains(spec, `"oomScoreAdj": 900`) {
		t.Errorf("the runtime spec does not carry oomScoreAdj 900: %s", spec)
	}
	_ = deletePod(ctx, c.admin, usersNS, "nri-probe")
}

// Scenario 6: helm upgrade with a changed policy takes effect without
// restarting the protected pods; helm uninstall removes every object.
func scenarioUpgradeUninstall(t *testing.T, c *cluster, n *Node) {
	ctx := t.Context()
	ids := map[string]string{}
	for _, name := range []string{"nb", "lab"} {
		_, p := c.view(ctx, t, n, usersNS, name)
		ids[name] = containerID(p, "main")
	}
	start := time.Now()
	vals := map[string]any{"nri": map[string]any{"enabled": true}, "policy": map[string]any{"podOOMScoreAdj": 800}}
	if err := c.helm.upgrade(ctx, t, release, vals); err != nil {
		t.Fatalf("helm upgrade: %v", err)
	}
	for _, name := range []string{"nb", "lab"} {
		var v ContainerView
		var p *corev1.Pod
		if err := poll(ctx, 4*time.Minute, time.Second, func(ctx context.Context) (bool, error) {
			v, p = c.view(ctx, t, n, usersNS, name)
			return v.protected(800), nil
		}); err != nil {
			t.Errorf("%s never moved to 800: %s", name, v)
		}
		if containerID(p, "main") != ids[name] || restarts(p) != 0 {
			t.Errorf("%s was restarted by the upgrade (container %s -> %s, restarts %d)", name, ids[name], containerID(p, "main"), restarts(p))
		}
	}
	timing("scenario 6: new policy (adj 800) on running pods %s after helm upgrade", time.Since(start).Round(100*time.Millisecond))

	if err := c.helm.uninstall(t, release); err != nil {
		t.Fatalf("helm uninstall: %v", err)
	}
	var left []string
	if err := poll(ctx, 3*time.Minute, 2*time.Second, func(ctx context.Context) (bool, error) {
		left = c.releaseObjects(ctx)
		return len(left) == 0, nil
	}); err != nil {
		t.Errorf("objects left after helm uninstall: %v", left)
	}
	for _, name := range []string{"nb", "lab"} {
		v, _ := c.view(ctx, t, n, usersNS, name)
		t.Logf("REPORT scenario 6: after uninstall, on the node, %s keeps %s", name, v)
		if !v.protected(800) {
			t.Logf("%s changed after uninstall: %s", name, v)
		}
	}
	hostd, _ := n.Sh(ctx, "for d in sshd systemd-network; do echo \"$d $(cat /proc/$(sh /pw/service.sh pids $d)/oom_score_adj)\"; done")
	t.Logf("REPORT scenario 6: after uninstall, host daemons keep: %s", strings.Join(strings.Fields(hostd), " "))
}

// releaseObjects lists what of the release is still in the API.
func (c *cluster) releaseObjects(ctx context.Context) []string {
	var left []string
	sel := metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + release}
	if l, err := c.admin.AppsV1().DaemonSets(agentNS).List(ctx, sel); err == nil {
		for _, o := range l.Items {
			left = append(left, "DaemonSet/"+o.Name)
		}
	}
	if l, err := c.admin.CoreV1().Pods(agentNS).List(ctx, sel); err == nil {
		for _, o := range l.Items {
			left = append(left, "Pod/"+o.Name)
		}
	}
	if l, err := c.admin.CoreV1().ConfigMaps(agentNS).List(ctx, sel); err == nil {
		for _, o := range l.Items {
			left = append(left, "ConfigMap/"+o.Name)
		}
	}
	if l, err := c.admin.CoreV1().ServiceAccounts(agentNS).List(ctx, sel); err == nil {
		for _, o := range l.Items {
			left = append(left, "ServiceAccount/"+o.Name)
		}
	}
	if l, err := c.admin.CoreV1().Services(agentNS).List(ctx, sel); err == nil {
		for _, o := range l.Items {
			left = append(left, "Service/"+o.Name)
		}
	}
	if l, err := c.admin.RbacV1().ClusterRoles().List(ctx, sel); err == nil {
		for _, o := range l.Items {
			left = append(left, "ClusterRole/"+o.Name)
		}
	}
	if l, err := c.admin.RbacV1().ClusterRoleBindings().List(ctx, sel); err == nil {
		for _, o := range l.Items {
			left = append(left, "ClusterRoleBinding/"+o.Name)
		}
	}
	if l, err := c.admin.RbacV1().RoleBindings(agentNS).List(ctx, sel); err == nil {
		for _, o := range l.Items {
			left = append(left, "RoleBinding/"+o.Name)
		}
	}
	if l, err := c.admin.CoreV1().Secrets(agentNS).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,name=" + release}); err == nil {
		for _, o := range l.Items {
			left = append(left, "Secret/"+o.Name+" (Helm release)")
		}
	}
	return left
}

// Scenario 7: the same install on a node without AppArmor runs and
// protects, and the agent's own pod is never a target.
func scenarioNoAppArmor(t *testing.T, c *cluster, n *Node) {
	ctx := t.Context()
	aa, _ := n.Sh(ctx, "cat /sys/module/apparmor/parameters/enabled; ls /sys/kernel/security")
	t.Logf("REPORT scenario 7: AppArmor enabled=%s", strings.Join(strings.Fields(aa), " "))
	if !strings.HasPrefix(strings.TrimSpace(aa), "N") {
		t.Fatalf("node B has AppArmor on: %s", aa)
	}
	start := time.Now()
	if err := c.helm.install(ctx, t, release, agentValues); err != nil {
		t.Fatalf("helm install: %v", err)
	}
	agent := c.agentPod(ctx, t, nodeB, 1)
	timing("scenario 7: agent pod Ready on the node without AppArmor %s after helm install", time.Since(start).Round(100*time.Millisecond))
	createPod(ctx, t, c.admin, podSpec(usersNS, "nb-b", nodeB, idleScript, labCPU, labMem))
	if _, err := waitRunning(ctx, c.admin, usersNS, "nb-b", 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	var v ContainerView
	if err := poll(ctx, 2*time.Minute, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
		v, _ = c.view(ctx, t, n, usersNS, "nb-b")
		return v.protected(900), nil
	}); err != nil {
		t.Errorf("nb-b not protected: %s", v)
	}
	// The agent's own container keeps what kubelet gave it, past a full
	// reconcile period; and the agent does not count itself.
	time.Sleep(time.Until(start.Add(20 * time.Second)))
	self, err := viewContainer(ctx, n, containerID(agent, "agent"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("REPORT scenario 7: the agent's own container: %s", self)
	if self.OOMGroup != "1" || slices.ContainsFunc(self.Procs, func(p GuestProc) bool { return p.Adj == 900 }) {
		t.Errorf("the agent targets its own pod: %s", self)
	}
	// What any client on the network gets from the chart's default
	// (metrics.auth kubernetes): 401 without a token, nothing served.
	if b, err := c.metricsRequest(ctx, agent.Name, false).DoRaw(ctx); err == nil || !apierrors.IsUnauthorized(err) || strings.Contains(string(b), "podwarden_") {
		t.Errorf("an unauthenticated scrape through the proxy got err %v, body %.200q; want 401 and no series", err, b)
	}
	text, err := c.metrics(ctx, agent.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := metricValue(text, "podwarden_protected_containers"); got != 1 {
		t.Errorf("podwarden_protected_containers = %g, want 1 (nb-b only)\n%s", got, grepLines(text, "protected"))
	}
	if _, ok := metricValue(text, "podwarden_protected_container_info", `namespace="`+agentNS+`"`); ok {
		t.Errorf("the agent lists its own namespace as protected:\n%s", grepLines(text, "protected_container_info"))
	}
	if err := c.helm.uninstall(t, release); err != nil {
		t.Errorf("helm uninstall: %v", err)
	}
}
