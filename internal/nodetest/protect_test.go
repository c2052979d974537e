package nodetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Scenario 1: as Kubernetes ships it. A node OOM from a Guaranteed pod
// kills the host daemons first (their adj 0 beats the pod's -997), then
// the whole container through memory.oom.group=1.
func scenarioWithout(t *testing.T, c *cluster, n *Node) {
	ctx := t.Context()
	createPod(ctx, t, c.admin, podSpec(usersNS, "nb", nodeA, idleScript, nbCPU, nbMem))
	start := time.Now()
	if _, err := waitRunning(ctx, c.admin, usersNS, "nb", 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	timing("scenario 1: Guaranteed pod Running %s after create", time.Since(start).Round(100*time.Millisecond))
	v, pod := c.view(ctx, t, n, usersNS, "nb")
	t.Logf("as kubelet set it: %s", v)
	if v.OOMGroup != "1" || len(v.Procs) == 0 || slices.ContainsFunc(v.Procs, func(p GuestProc) bool { return p.Adj != -997 }) {
		t.Errorf("want oom.group 1 and adj -997 from kubelet: %s", v)
	}
	markKernel(ctx, t, n, "s1")
	w := c.watchNode(ctx, nodeA)
	c.runHog(ctx, t, usersNS, "nb")
	var restarted *corev1.Pod
	if err := poll(ctx, 3*time.Minute, time.Second, func(ctx context.Context) (bool, error) {
		p, err := c.admin.CoreV1().Pods(usersNS).Get(ctx, "nb", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		restarted = p
		return restarts(p) > restarts(pod), nil
	}); err != nil {
		t.Errorf("the container was not restarted (memory.oom.group should have killed all of it): %v", err)
	}
	klog, err := kernelSince(ctx, n, "s1")
	if err != nil {
		t.Fatal(err)
	}
	k := kills(klog)
	t.Logf("REPORT scenario 1: kernel killed, in order: %v", k)
	group := strings.Contains(klog, "are going to be killed due to memory.oom.group set")
	iSshd, iNet, iHog := slices.Index(k, "sshd"), slices.Index(k, "systemd-network"), slices.Index(k, "hog")
	if iSshd < 0 || iNet < 0 || iHog < 0 || iSshd > iHog || iNet > iHog {
		t.Errorf("want sshd and systemd-network killed before the hog, got %v", k)
	}
	if !group {
		t.Error("no memory.oom.group kill of the container in the kernel log")
	}
	for _, d := range []string{"sshd", "systemd-network"} {
		if alive(ctx, n, d) {
			t.Errorf("%s survived", d)
		}
	}
	if restarted != nil {
		for _, cs := range restarted.Status.ContainerStatuses {
			if term := cs.LastTerminationState.Terminated; term != nil {
				t.Logf("REPORT scenario 1: container %s restartCount %d, last terminated %s exit %d", cs.Name, cs.RestartCount, term.Reason, term.ExitCode)
			}
		}
	}
	// Give the kubelet a status period to report what the OOM did to it.
	time.Sleep(15 * time.Second)
	notReady, renewals := w.stop()
	t.Logf("REPORT scenario 1: kubelet alive=%v containerd alive=%v; NodeReady not True at %d polls %v; lease renewed %d times",
		alive(ctx, n, "kubelet"), alive(ctx, n, "containerd"), len(notReady), notReady, len(renewals))
	t.Logf("REPORT scenario 1: group kill line: %v", group)

	// Put the node back the way an admin would find it after a reboot:
	// daemons running, the crashed pod gone.
	if err := deletePod(ctx, c.admin, usersNS, "nb"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Sh(ctx, "sh /pw/service.sh standins"); err != nil {
		t.Fatal(err)
	}
}

// Scenario 2: the chart installed with Helm, only the image overridden.
func scenarioChart(t *testing.T, c *cluster, n *Node) {
	ctx := t.Context()
	start := time.Now()
	if err := c.helm.install(ctx, t, release, agentValues); err != nil {
		t.Fatalf("helm install: %v", err)
	}
	agent := c.agentPod(ctx, t, nodeA, 1)
	timing("scenario 2: agent pod Ready %s after helm install", time.Since(start).Round(100*time.Millisecond))
	if sa := agent.Spec.ServiceAccountName; sa != release {
		t.Errorf("agent runs as ServiceAccount %q, want the chart's %q", sa, release)
	}
	checkPulledByDigest(ctx, t, c, n, agent)

	start = time.Now()
	createPod(ctx, t, c.admin, kernelOnly(podSpec(usersNS, "nb", nodeA, latencyScript, nbCPU, nbMem)))
	createPod(ctx, t, c.admin, kernelOnly(podSpec(usersNS, "lab", nodeA, idleScript, labCPU, labMem)))
	createPod(ctx, t, c.admin, podSpec("kube-system", "ks", nodeA, idleScript, labCPU, "32Mi"))
	for _, p := range [][2]string{{usersNS, "nb"}, {usersNS, "lab"}, {"kube-system", "ks"}} {
		if _, err := waitRunning(ctx, c.admin, p[0], p[1], 5*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	timing("scenario 2: three pods Running %s after create", time.Since(start).Round(100*time.Millisecond))
	for _, name := range []string{"nb", "lab"} {
		var v ContainerView
		if err := poll(ctx, 2*time.Minute, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
			v, _ = c.view(ctx, t, n, usersNS, name)
			return v.protected(900), nil
		}); err != nil {
			t.Errorf("%s not protected: %s", name, v)
		}
		t.Logf("%s: %s", name, v)
	}
	// Latency from container start, as the container measured it.
	var logs string
	if err := poll(ctx, time.Minute, time.Second, func(ctx context.Context) (bool, error) {
		var err error
		logs, err = podLogs(ctx, c.admin, usersNS, "nb", "main")
		return strings.Contains(logs, "protected="), err
	}); err != nil {
		t.Errorf("nb's log: %v", err)
	}
	var t0, t1 float64
	var first, final int
	if _, err := fmt.Sscanf(strings.TrimSpace(logs), "start=%g first=%d protected=%g adj=%d", &t0, &first, &t1, &final); err != nil || final != 900 {
		t.Errorf("nb's entrypoint: %q (%v)", logs, err)
	} else {
		timing("scenario 2: a new pod's first process read adj %d at start and 900 after %.0f ms (agent without NRI)", first, (t1-t0)*1000)
	}

	// A process started by kubectl exec gets the container's -997 from
	// the runtime; the agent raises it.
	out, _, err := kubectlExec(ctx, c.adminCfg, c.admin, usersNS, "nb", "main", "sh", "-c",
		`read a0 < /proc/self/oom_score_adj; a=$a0; i=0
while [ "$a" != 900 ] && [ $i -lt 3000 ]; do usleep 10000; i=$((i+1)); read a < /proc/self/oom_score_adj; done
echo "first=$a0 final=$a waited_ms=$((i*10))"`)
	if err != nil || !strings.Contains(out, "final=900") {
		t.Errorf("kubectl exec process: %q %v", out, err)
	}
	timing("scenario 2: kubectl exec process: %s", strings.TrimSpace(out))

	// The non-target pod keeps what kubelet set, past a full reconcile
	// period (the policy's 10 s) after the agent became Ready.
	time.Sleep(time.Until(start.Add(15 * time.Second)))
	ks, _ := c.view(ctx, t, n, "kube-system", "ks")
	if ks.OOMGroup != "1" || slices.ContainsFunc(ks.Procs, func(p GuestProc) bool { return p.Adj != -997 }) {
		t.Errorf("the kube-system pod was changed: %s", ks)
	}
	t.Logf("ks (not a target): %s", ks)
}

// syslogProbe answers issue 16's open question on this node: may a
// container with CAP_SYSLOG, seccomp RuntimeDefault and containerd's
// default AppArmor profile read the kernel log with syslog(2) READ_ALL
// (busybox dmesg is klogctl(3))? A control pod without CAP_SYSLOG must be
// refused (the node has kernel.dmesg_restrict=1).
func (c *cluster) syslogProbe(ctx context.Context, t *testing.T, n *Node) {
	t.Helper()
	script := `dmesg >/dev/null 2>/tmp/err; rc=$?; read aa < /proc/self/attr/current
echo "rc=$rc apparmor=$aa seccomp=$(grep '^Seccomp:' /proc/self/status | tr -d '\t ') err=$(cat /tmp/err)"
sleep 1000000`
	f, ro := false, true
	for name, caps := range map[string][]corev1.Capability{"syslog-probe": {"SYSLOG"}, "syslog-control": nil} {
		p := podSpec("kube-system", name, nodeA, script, "", "")
		p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{
			RunAsUser: new(int64), Privileged: &f, AllowPrivilegeEscalation: &f, ReadOnlyRootFilesystem: &ro,
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: caps},
		}
		p.Spec.Volumes = []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}}
		createPod(ctx, t, c.admin, p)
	}
	for _, name := range []string{"syslog-probe", "syslog-control"} {
		if _, err := waitRunning(ctx, c.admin, "kube-system", name, 3*time.Minute); err != nil {
			t.Errorf("%v", err)
			continue
		}
		var logs string
		_ = poll(ctx, time.Minute, time.Second, func(ctx context.Context) (bool, error) {
			var err error
			logs, err = podLogs(ctx, c.admin, "kube-system", name, "main")
			return strings.Contains(logs, "rc="), err
		})
		t.Logf("REPORT syslog(2) READ_ALL, %s (%s): %s", name, map[string]string{"syslog-probe": "CAP_SYSLOG", "syslog-control": "no capabilities"}[name], strings.TrimSpace(logs))
		if name == "syslog-control" && !strings.Contains(logs, "rc=1") {
			t.Errorf("the control pod without CAP_SYSLOG read the kernel log: %s", logs)
		}
		if !strings.Contains(logs, "rc=") {
			t.Errorf("%s printed nothing", name)
		}
		// Node A runs AppArmor: containerd must confine a pod that asks
		// for no profile with its default one, or this probe proves
		// nothing about that profile.
		if !strings.Contains(logs, "apparmor=cri-containerd.apparmor.d") {
			t.Errorf("%s is not confined by containerd's default AppArmor profile: %s", name, logs)
		}
		_ = deletePod(ctx, c.admin, "kube-system", name)
	}
}
