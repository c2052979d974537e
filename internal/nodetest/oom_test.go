package nodetest

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Scenario 3: a container-limit OOM in an interactive pod.
func scenarioContainerLimit(t *testing.T, c *cluster, n *Node) {
	ctx := t.Context()
	c.syslogProbe(ctx, t, n)
	before, pod := c.view(ctx, t, n, usersNS, "lab")
	markKernel(ctx, t, n, "s3")
	c.runHog(ctx, t, usersNS, "lab")
	klog, err := kernelSince(ctx, n, "s3")
	if err != nil {
		t.Fatal(err)
	}
	k := kills(klog)
	t.Logf("REPORT scenario 3: kernel killed %v", k)
	if len(k) == 0 || slices.ContainsFunc(k, func(s string) bool { return s != "memcg:hog" }) {
		t.Errorf("want only the hog killed by its container's limit, got %v", k)
	}
	after, podAfter := c.view(ctx, t, n, usersNS, "lab")
	for _, p := range before.Procs {
		if !slices.ContainsFunc(after.Procs, func(q GuestProc) bool { return q.PID == p.PID }) {
			t.Errorf("%s[%d] died with the hog", p.Comm, p.PID)
		}
	}
	if podAfter.Status.Phase != corev1.PodRunning || restarts(podAfter) != restarts(pod) || restarts(podAfter) != 0 {
		t.Errorf("lab: phase %s restarts %d, want Running with 0", podAfter.Status.Phase, restarts(podAfter))
	}

	// A Warning Event on the pod naming the process.
	var ev *corev1.Event
	if err := poll(ctx, 2*time.Minute, 2*time.Second, func(ctx context.Context) (bool, error) {
		evs, err := c.admin.CoreV1().Events(usersNS).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=lab"})
		if err != nil {
			return false, err
		}
		for i := range evs.Items {
			e := &evs.Items[i]
			if e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, "hog") && e.Source.Component != "kubelet" {
				ev = e
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Errorf("no Warning Event on users/lab naming the hog: %v", err)
	} else {
		t.Logf("REPORT scenario 3: Event %s %s from %s: %s", ev.Type, ev.Reason, ev.Source.Component, ev.Message)
	}

	agent := c.agentPod(ctx, t, nodeA, 1)
	var text string
	if err := poll(ctx, time.Minute, 2*time.Second, func(ctx context.Context) (bool, error) {
		var err error
		text, err = c.metrics(ctx, agent.Name)
		v, ok := metricValue(text, "podwarden_oom_kills_total", `namespace="users"`, `pod="lab"`)
		return ok && v >= 1, err
	}); err != nil {
		t.Errorf("podwarden_oom_kills_total for users/lab: %v\n%s", err, grepLines(text, "oom_kills"))
	}

	// podwarden status on this host, as a user bound to the viewer roles.
	c.bindViewer(ctx, t)
	// out keeps the last complete run: the poll's deadline kills a run in
	// flight.
	var out []byte
	if err := poll(ctx, time.Minute, 2*time.Second, func(ctx context.Context) (bool, error) {
		cmd := exec.CommandContext(ctx, c.cliDir+"/podwarden", "status", "--kubeconfig", c.viewerKC)
		b, err := cmd.CombinedOutput()
		if err != nil {
			return false, fmt.Errorf("%v: %s", err, b)
		}
		out = b
		return statusShows(string(out), nodeA, "users/lab", true), nil
	}); err != nil {
		t.Errorf("podwarden status does not show %s, users/lab protected and its OOM: %v\n%s", nodeA, err, out)
	}
	t.Logf("REPORT scenario 3: podwarden status:\n%s", out)
}

// statusShows: the node's agent row, the pod among the protected pods and
// (with oom) an OOM row for it.
func statusShows(out, node, pod string, oom bool) bool {
	var agentRow, protected, oomRow bool
	section := ""
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case strings.HasPrefix(l, "Protected pods"):
			section = "protected"
		case strings.HasPrefix(l, "OOM kills"):
			section = "oom"
		case strings.HasPrefix(l, "NODE "), len(f) == 0:
		case section == "" && f[0] == node && len(f) > 2 && f[2] == "yes":
			agentRow = true
		case section == "protected" && f[0] == node && strings.Contains(l, pod):
			protected = true
		case section == "oom" && f[0] == node && len(f) > 1 && f[1] == pod:
			oomRow = true
		}
	}
	return agentRow && protected && (oomRow || !oom)
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// bindViewer binds group sre to the chart's viewer roles, as
// docs/kubernetes.md tells users to.
func (c *cluster) bindViewer(ctx context.Context, t *testing.T) {
	t.Helper()
	subj := []rbacv1.Subject{{Kind: "Group", Name: "sre", APIGroup: rbacv1.GroupName}}
	_, err := c.admin.RbacV1().RoleBindings(agentNS).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "sre-podwarden-viewer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: release + "-viewer"},
		Subjects:   subj}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	_, err = c.admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "sre-podwarden-node-viewer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: release + "-node-viewer"},
		Subjects:   subj}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// Scenario 4: a node OOM caused by the interactive pod, with the chart.
func scenarioNodeOOM(t *testing.T, c *cluster, n *Node) {
	ctx := t.Context()
	r := c.runWatchedHog(ctx, t, n, usersNS, "nb", "s4", hogScript)
	k := kills(r.klog)
	t.Logf("REPORT scenario 4: kernel killed %v; lease renewed %d times while watched; NodeReady never left True: %v", k, len(r.renewals), len(r.notReady) == 0)
	if len(k) == 0 || slices.ContainsFunc(k, func(s string) bool { return s != "hog" }) {
		t.Errorf("want only the hog killed by the node OOM, got %v", k)
	}
	if strings.Contains(r.klog, "memory.oom.group") {
		t.Error("a memory.oom.group kill happened")
	}
	c.checkSurvivors(ctx, t, n, r)
}
