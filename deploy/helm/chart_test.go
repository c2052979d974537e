package helm_test

// The Helm library renders the chart here, in tests only: it pulls in ~280
// modules that must stay out of the podwarden binary.

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"

	"podwarden/internal/kubetest"
	"podwarden/internal/policy"
)

var update = flag.Bool("update", false, "rewrite deploy/manifests/podwarden.yaml from the chart")

const (
	chartDir     = "podwarden"
	manifestPath = "../manifests/podwarden.yaml"
	releaseName  = "podwarden"
	releaseNS    = "podwarden-system"
)

const manifestHeader = `# podwarden: the Helm chart deploy/helm/podwarden rendered with its default
# values and namespace.create=true, for "kubectl apply -f". Generated, do not
# edit: change the chart and run
#   go test ./deploy/helm -run TestChartGolden -update
#
# The image below is the release's by tag. Until a release is published
# there, build and push it yourself (make release VERSION=vX.Y.Z PUSH=1
# REGISTRY=your.registry, docs/kubernetes.md "Install") and set the
# DaemonSet's image, or every node goes to ImagePullBackOff.
`

// render runs the chart the way "helm template" does (a client-only dry-run
// install) and returns the manifest.
func render(t *testing.T, values map[string]any) string {
	t.Helper()
	out, err := renderFor(kubetest.KubeVersion, values)
	if err != nil {
		t.Fatalf("rendering chart: %v", err)
	}
	return out
}

// renderFor renders the chart for a cluster of Kubernetes version kv.
func renderFor(kv string, values map[string]any) (string, error) {
	chrt, err := loader.Load(chartDir)
	if err != nil {
		return "", fmt.Errorf("loading chart: %w", err)
	}
	v, err := chartutil.ParseKubeVersion(kv)
	if err != nil {
		return "", err
	}
	install := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	install.DryRun = true
	install.ClientOnly = true
	install.Replace = true
	install.ReleaseName = releaseName
	install.Namespace = releaseNS
	// Helm's client-only default is v1.20; render for the version asked
	// (the API-server tests run kubetest.KubeVersion).
	install.KubeVersion = v
	rel, err := install.Run(chrt, values)
	if err != nil {
		return "", err
	}
	return rel.Manifest, nil
}

// manifestValues are the values deploy/manifests/podwarden.yaml is rendered
// with: the defaults, plus the Namespace object kubectl users need.
func manifestValues() map[string]any {
	return map[string]any{"namespace": map[string]any{"create": true}}
}

func TestChartGolden(t *testing.T) {
	got := manifestHeader + render(t, manifestValues())
	if *update {
		if err := os.WriteFile(manifestPath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(manifestPath)
	if err != nil {
		t.Fatalf("%v (run go test ./deploy/helm -run TestChartGolden -update)", err)
	}
	if string(want) != got {
		t.Errorf("%s is not the rendered chart; run go test ./deploy/helm -run TestChartGolden -update\n%s",
			manifestPath, firstDiff(string(want), got))
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return "line " + strconv.Itoa(i+1) + ":\n  file:  " + x + "\n  chart: " + y
		}
	}
	return ""
}

// decodeAll decodes every rendered object into its client-go type; an
// object client-go does not know (ServiceMonitor) is an error.
func decodeAll(t *testing.T, manifest string) []runtime.Object {
	t.Helper()
	objs, err := kubetest.Decode([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	var out []runtime.Object
	for _, u := range objs {
		b, err := u.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		o, _, err := scheme.Codecs.UniversalDeserializer().Decode(b, nil, nil)
		if err != nil {
			t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
		}
		out = append(out, o)
	}
	return out
}

func find[T runtime.Object](objs []runtime.Object) []T {
	var out []T
	for _, o := range objs {
		if x, ok := o.(T); ok {
			out = append(out, x)
		}
	}
	return out
}

func TestChartSecurity(t *testing.T) {
	for name, tc := range map[string]struct {
		values   map[string]any
		caps     []string
		hostPath []string
		nri      bool
	}{
		"defaults": {
			values:   nil,
			caps:     []string{"DAC_OVERRIDE", "IPC_LOCK", "KILL", "NET_ADMIN", "SYSLOG", "SYS_NICE", "SYS_RESOURCE"},
			hostPath: []string{"/dev/kmsg", "/run/containerd", "/sys/fs/cgroup"},
		},
		"no kernel log": {
			values:   map[string]any{"kernelLog": map[string]any{"enabled": false}},
			caps:     []string{"DAC_OVERRIDE", "IPC_LOCK", "KILL", "NET_ADMIN", "SYS_NICE", "SYS_RESOURCE"},
			hostPath: []string{"/run/containerd", "/sys/fs/cgroup"},
		},
		"exe rule": {
			values: map[string]any{"policy": map[string]any{"protected": []any{
				map[string]any{"comm": "sshd"}, map[string]any{"exe": "/usr/bin/amazon-ssm-agent"}}}},
			caps:     []string{"DAC_OVERRIDE", "IPC_LOCK", "KILL", "NET_ADMIN", "SYSLOG", "SYS_NICE", "SYS_PTRACE", "SYS_RESOURCE"},
			hostPath: []string{"/dev/kmsg", "/run/containerd", "/sys/fs/cgroup"},
		},
		"nri and cri-o": {
			values: map[string]any{
				"nri":     map[string]any{"enabled": true},
				"runtime": map[string]any{"endpoint": "unix:///var/run/crio/crio.sock", "socketDir": "/var/run/crio"},
			},
			caps:     []string{"DAC_OVERRIDE", "IPC_LOCK", "KILL", "NET_ADMIN", "SYSLOG", "SYS_NICE", "SYS_RESOURCE"},
			hostPath: []string{"/dev/kmsg", "/sys/fs/cgroup", "/var/run/crio", "/var/run/nri"},
			nri:      true,
		},
		// Written through /proc/PID/root of a container process: a ptrace
		// read check (internal/preempt's TestMessageFileWithChartCaps).
		"message file": {
			values:   map[string]any{"policy": map[string]any{"preempt": map[string]any{"messageFile": "/tmp/podwarden-oom.txt"}}},
			caps:     []string{"DAC_OVERRIDE", "IPC_LOCK", "KILL", "NET_ADMIN", "SYSLOG", "SYS_NICE", "SYS_PTRACE", "SYS_RESOURCE"},
			hostPath: []string{"/dev/kmsg", "/run/containerd", "/sys/fs/cgroup"},
		},
		"message file, no early action": {
			values:   map[string]any{"policy": map[string]any{"preempt": map[string]any{"enabled": false, "messageFile": "/tmp/podwarden-oom.txt"}}},
			caps:     []string{"DAC_OVERRIDE", "NET_ADMIN", "SYSLOG", "SYS_RESOURCE"},
			hostPath: []string{"/dev/kmsg", "/run/containerd", "/sys/fs/cgroup"},
		},
		"no early action": {
			values:   map[string]any{"policy": map[string]any{"preempt": map[string]any{"enabled": false}}},
			caps:     []string{"DAC_OVERRIDE", "NET_ADMIN", "SYSLOG", "SYS_RESOURCE"},
			hostPath: []string{"/dev/kmsg", "/run/containerd", "/sys/fs/cgroup"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			objs := decodeAll(t, render(t, tc.values))
			dss := find[*appsv1.DaemonSet](objs)
			if len(dss) != 1 {
				t.Fatalf("%d DaemonSets, want 1", len(dss))
			}
			ds := dss[0]
			checkPodSpec(t, ds, tc.caps, tc.hostPath, tc.nri)
			checkRBAC(t, objs)
		})
	}
}

// TestChartAppArmor: by default the pod asks for no AppArmor profile, so
// the kubelet admits it on nodes without AppArmor (issue 16: RuntimeDefault
// got the pod rejected in a loop there; internal/nodetest runs the chart on
// both kinds of node). A profile the user sets goes to the agent only.
func TestChartAppArmor(t *testing.T) {
	for name, tc := range map[string]struct {
		values map[string]any
		field  corev1.AppArmorProfileType
	}{
		"default":         {},
		"runtime default": {values: map[string]any{"type": "RuntimeDefault"}, field: corev1.AppArmorProfileTypeRuntimeDefault},
		"unconfined":      {values: map[string]any{"type": "Unconfined"}, field: corev1.AppArmorProfileTypeUnconfined},
	} {
		t.Run(name, func(t *testing.T) {
			var values map[string]any
			if tc.values != nil {
				values = map[string]any{"appArmorProfile": tc.values}
			}
			ds := find[*appsv1.DaemonSet](decodeAll(t, render(t, values)))[0]
			for _, c := range ds.Spec.Template.Spec.Containers {
				p := c.SecurityContext.AppArmorProfile
				switch {
				case c.Name != "agent" && p != nil:
					t.Errorf("%s: appArmorProfile %+v", c.Name, p)
				case c.Name == "agent" && tc.field == "" && p != nil:
					t.Errorf("agent: appArmorProfile %+v, want none", p)
				case c.Name == "agent" && tc.field != "" && (p == nil || p.Type != tc.field):
					t.Errorf("agent: appArmorProfile %+v, want %s", p, tc.field)
				}
			}
		})
	}
}

func checkPodSpec(t *testing.T, ds *appsv1.DaemonSet, caps, hostPaths []string, nri bool) {
	t.Helper()
	spec := ds.Spec.Template.Spec
	if !spec.HostPID || !spec.HostNetwork {
		t.Errorf("hostPID %v hostNetwork %v: both are needed", spec.HostPID, spec.HostNetwork)
	}
	if spec.HostIPC {
		t.Error("hostIPC is not needed")
	}
	if spec.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName %q", spec.PriorityClassName)
	}
	if len(spec.Tolerations) != 1 || spec.Tolerations[0].Operator != corev1.TolerationOpExists || spec.Tolerations[0].Key != "" {
		t.Errorf("tolerations %+v: want one that tolerates every taint", spec.Tolerations)
	}
	if ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType {
		t.Errorf("update strategy %q", ds.Spec.UpdateStrategy.Type)
	}
	if sp := spec.SecurityContext.SeccompProfile; sp == nil || sp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod seccomp %+v", sp)
	}
	if spec.AutomountServiceAccountToken != nil && !*spec.AutomountServiceAccountToken {
		t.Error("the agent needs its token for Events")
	}

	var got []string
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			got = append(got, v.HostPath.Path)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, hostPaths) {
		t.Errorf("host paths %v, want exactly %v", got, hostPaths)
	}

	wantContainers := 1
	if nri {
		wantContainers = 2
	}
	if len(spec.Containers) != wantContainers || len(spec.InitContainers) != 0 {
		t.Fatalf("%d containers, %d init containers", len(spec.Containers), len(spec.InitContainers))
	}
	for _, c := range spec.Containers {
		sc := c.SecurityContext
		if sc == nil {
			t.Fatalf("%s: no securityContext", c.Name)
		}
		if sc.Privileged == nil || *sc.Privileged {
			t.Errorf("%s: privileged must be set to false", c.Name)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: allowPrivilegeEscalation must be false", c.Name)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: readOnlyRootFilesystem must be true", c.Name)
		}
		if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: seccomp %+v", c.Name, sc.SeccompProfile)
		}
		if sc.RunAsUser == nil || *sc.RunAsUser != 0 {
			t.Errorf("%s: must run as uid 0 (root-owned cgroup files, root-only NRI socket)", c.Name)
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("%s: capabilities must drop ALL, got %+v", c.Name, sc.Capabilities)
		}
		if c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
			t.Errorf("%s: resources %+v: want memory request and limit, cpu request", c.Name, c.Resources)
		}
		var added []string
		for _, a := range sc.Capabilities.Add {
			added = append(added, string(a))
		}
		slices.Sort(added)
		switch c.Name {
		case "agent":
			if !slices.Equal(added, caps) {
				t.Errorf("agent capabilities %v, want exactly %v", added, caps)
			}
			checkAgentContainer(t, c)
		case "nri":
			if len(added) != 0 {
				t.Errorf("nri capabilities %v, want none", added)
			}
			if c.Args[0] != "nri" {
				t.Errorf("nri args %v", c.Args)
			}
		default:
			t.Errorf("unexpected container %s", c.Name)
		}
		for _, m := range c.VolumeMounts {
			if writable := !m.ReadOnly; writable && !(c.Name == "agent" && m.Name == "cgroup") && m.Name != "nri" {
				t.Errorf("%s: mount %s is writable; only the agent's cgroup tree and the NRI socket directory may be", c.Name, m.Name)
			}
		}
	}
}

func checkAgentContainer(t *testing.T, c corev1.Container) {
	t.Helper()
	if c.Args[0] != "agent" || !slices.Contains(c.Args, "--config=/etc/podwarden/policy.yaml") || !slices.Contains(c.Args, "--cgroup-root=/host/sys/fs/cgroup") {
		t.Errorf("agent args %v", c.Args)
	}
	var node bool
	for _, e := range c.Env {
		if e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName" {
			node = true
		}
	}
	if !node {
		t.Error("NODE_NAME must come from the downward API (spec.nodeName)")
	}
	if c.LivenessProbe == nil || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Error("agent needs liveness (/healthz) and readiness (/readyz) probes")
	}
	// A reference a node can pull once it is published: registry host, repository,
	// the chart's appVersion as tag; not a local-only name like podwarden:dev.
	if img := c.Image; !strings.HasPrefix(img, "ghcr.io/podwarden/podwarden:v") || strings.Contains(img, ":dev") {
		t.Errorf("default image %q: want ghcr.io/podwarden/podwarden:<appVersion>", img)
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "metrics" {
		t.Errorf("ports %+v: podwarden status finds /metrics by the port named metrics", c.Ports)
	}
}

// checkRBAC pins the agent's permissions: exactly what the Events reporter
// uses, so a widening shows up in review.
func checkRBAC(t *testing.T, objs []runtime.Object) {
	t.Helper()
	want := map[string][]rbacv1.PolicyRule{
		"podwarden": {
			{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}},
			// metrics.auth kubernetes: check scrapes' tokens.
			{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
			{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
		},
		"podwarden-viewer": {
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
			{APIGroups: []string{""}, Resources: []string{"pods/proxy"}, Verbs: []string{"get"}},
			// A token of the metrics reader only, for status through the
			// pod proxy.
			{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, Verbs: []string{"create"}, ResourceNames: []string{"podwarden-metrics-reader"}},
		},
		"podwarden-node-viewer": {
			{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"list"}},
		},
		"podwarden-metrics-reader": {
			{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}},
		},
	}
	roles := find[*rbacv1.ClusterRole](objs)
	if len(roles) != len(want) {
		t.Errorf("%d ClusterRoles, want %d", len(roles), len(want))
	}
	for _, r := range roles {
		w, ok := want[r.Name]
		if !ok {
			t.Errorf("unexpected ClusterRole %s", r.Name)
			continue
		}
		if len(r.Rules) != len(w) {
			t.Errorf("%s: rules %+v, want %+v", r.Name, r.Rules, w)
			continue
		}
		for i := range w {
			if !slices.Equal(r.Rules[i].APIGroups, w[i].APIGroups) || !slices.Equal(r.Rules[i].Resources, w[i].Resources) ||
				!slices.Equal(r.Rules[i].Verbs, w[i].Verbs) || !slices.Equal(r.Rules[i].ResourceNames, w[i].ResourceNames) ||
				!slices.Equal(r.Rules[i].NonResourceURLs, w[i].NonResourceURLs) {
				t.Errorf("%s rule %d: %+v, want %+v", r.Name, i, r.Rules[i], w[i])
			}
		}
	}
	// Each role bound to its own ServiceAccount only: the agent's, and
	// the metrics reader's.
	bindings := find[*rbacv1.ClusterRoleBinding](objs)
	bound := map[string]string{}
	for _, b := range bindings {
		if len(b.Subjects) != 1 || b.Subjects[0].Kind != "ServiceAccount" || b.Subjects[0].Namespace != releaseNS {
			t.Errorf("ClusterRoleBinding %s subjects %+v: want one ServiceAccount of %s", b.Name, b.Subjects, releaseNS)
			continue
		}
		bound[b.RoleRef.Name] = b.Subjects[0].Name
	}
	if want := map[string]string{"podwarden": "podwarden", "podwarden-metrics-reader": "podwarden-metrics-reader"}; !reflect.DeepEqual(bound, want) {
		t.Errorf("ClusterRoleBindings bind %v, want %v", bound, want)
	}
}

// The policy the chart ships must load in the agent.
func TestChartPolicyParses(t *testing.T) {
	cms := find[*corev1.ConfigMap](decodeAll(t, render(t, nil)))
	if len(cms) != 1 {
		t.Fatalf("%d ConfigMaps rendered, want 1", len(cms))
	}
	cfg, err := policy.Parse(strings.NewReader(cms[0].Data["policy.yaml"]), "policy.yaml")
	if err != nil {
		t.Fatalf("chart policy: %v\n%s", err, cms[0].Data["policy.yaml"])
	}
	// values.yaml spells out the agent's defaults: the two must not drift
	// (a daemon added to one list only would be protected by the chart
	// and not by the binary, or the other way round).
	// values.yaml writes the empty namespace list out; the code leaves it nil.
	// One difference on purpose: the chart turns early action on; the
	// binary run by hand acts before the kernel only when asked.
	want := policy.Default()
	want.Preempt.Enabled = true
	if len(cfg.Selector.Namespaces) == 0 && len(want.Selector.Namespaces) == 0 {
		cfg.Selector.Namespaces, want.Selector.Namespaces = nil, nil
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("chart policy differs from policy.Default():\n chart: %+v\n code:  %+v", cfg, want)
	}
}

func TestChartOptionalObjects(t *testing.T) {
	out := render(t, map[string]any{
		"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": true}, "podMonitor": map[string]any{"enabled": true}},
		"viewer":  map[string]any{"subjects": []any{map[string]any{"kind": "Group", "name": "sre", "apiGroup": "rbac.authorization.k8s.io"}}},
	})
	objs, err := kubetest.Decode([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
	}
	for kind, n := range map[string]int{"ServiceMonitor": 1, "PodMonitor": 1, "Service": 1, "RoleBinding": 1, "ClusterRoleBinding": 3, "Secret": 1} {
		if kinds[kind] != n {
			t.Errorf("%d %s, want %d (all kinds: %v)", kinds[kind], kind, n, kinds)
		}
	}
	if defaults := render(t, nil); strings.Contains(defaults, "monitoring.coreos.com") || strings.Contains(defaults, "kind: Namespace") {
		t.Error("monitors and the Namespace must be off by default")
	}
	if !bytes.Contains([]byte(out), []byte("__meta_kubernetes_pod_node_name")) {
		t.Error("monitors should label series with the node")
	}
	// GOMEMLIMIT follows the memory limit, and goes with it.
	if !strings.Contains(out, "GOMEMLIMIT") {
		t.Error("default limits: no GOMEMLIMIT")
	}
	if noLimit := render(t, map[string]any{"resources": map[string]any{"limits": nil}}); strings.Contains(noLimit, "GOMEMLIMIT") {
		t.Error("no memory limit, yet GOMEMLIMIT is set")
	}
}

// TestChartLint runs "helm lint" (the library behind it): Chart.yaml,
// values, template syntax and the rendered YAML.
func TestChartLint(t *testing.T) {
	kv := &chartutil.KubeVersion{Version: kubetest.KubeVersion, Major: "1", Minor: "37"}
	l := lint.AllWithKubeVersion(chartDir, nil, releaseNS, kv)
	for _, m := range l.Messages {
		if m.Severity >= support.WarningSev {
			t.Error(m.Error())
		} else {
			t.Log(m.Error())
		}
	}
}

// Events are on in what we ship (the RBAC is there for them), and can be
// turned off; the capabilities the chart adds each say why.
func TestChartEventsAndCapabilityReasons(t *testing.T) {
	out := render(t, nil)
	if !strings.Contains(out, "- --kube-events") {
		t.Error("default render does not pass --kube-events")
	}
	if off := render(t, map[string]any{"events": map[string]any{"enabled": false}}); strings.Contains(off, "--kube-events") {
		t.Error("events.enabled=false still passes --kube-events")
	}
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if c, ok := strings.CutPrefix(strings.TrimSpace(l), "- "); ok && slices.Contains([]string{"SYS_RESOURCE", "DAC_OVERRIDE", "NET_ADMIN", "SYSLOG", "SYS_PTRACE"}, c) {
			if prev := strings.TrimSpace(lines[i-1]); !strings.HasPrefix(prev, "# ") || len(prev) < 20 {
				t.Errorf("capability %s is not commented with why: %q", c, prev)
			}
		}
	}
}
