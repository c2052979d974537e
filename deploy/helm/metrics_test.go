package helm_test

import (
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"podwarden/internal/kubetest"
)

// webConfigValues turn on TLS (which both kinds of metrics.auth use).
func webConfigValues() map[string]any {
	return map[string]any{
		"secretName": "podwarden-web", "key": "web.yml", "tls": true,
		"monitorTLSConfig": map[string]any{"insecureSkipVerify": true},
	}
}

// basicAuthValues are webConfigValues with basic auth, which needs
// metrics.auth none.
func basicAuthValues() map[string]any {
	v := webConfigValues()
	v["probeAuthorization"] = "Basic cHJvYmU6c2VjcmV0"
	v["monitorBasicAuth"] = map[string]any{
		"username": map[string]any{"name": "podwarden-scrape", "key": "username"},
		"password": map[string]any{"name": "podwarden-scrape", "key": "password"},
	}
	return v
}

// metrics.webConfig mounts the Secret, passes --web-config-file at the
// path it is mounted, and makes the probes and both monitors speak HTTPS,
// with basic auth (metrics.auth none) or the metrics reader's token
// (kubernetes); off, none of it is rendered.
func TestChartMetricsWebConfig(t *testing.T) {
	for name, tc := range map[string]struct {
		auth       string
		webConfig  map[string]any
		monitorKey string // basicAuth or authorization
		probeAuth  string
	}{
		"basic auth":           {"none", basicAuthValues(), "basicAuth", "Basic cHJvYmU6c2VjcmV0"},
		"tls, kubernetes auth": {"kubernetes", webConfigValues(), "authorization", ""},
	} {
		t.Run(name, func(t *testing.T) {
			out := render(t, map[string]any{"metrics": map[string]any{
				"auth": tc.auth, "webConfig": tc.webConfig,
				"serviceMonitor": map[string]any{"enabled": true}, "podMonitor": map[string]any{"enabled": true},
			}})
			checkMetricsWebConfig(t, out, tc.monitorKey, tc.probeAuth)
		})
	}
	if def := render(t, nil); strings.Contains(def, "web-config") || strings.Contains(def, "HTTPS") {
		t.Error("web config rendered by default")
	}
	_, err := renderFor(kubetest.KubeVersion, map[string]any{"metrics": map[string]any{"webConfig": basicAuthValues()}})
	if err == nil || !strings.Contains(err.Error(), "metrics.auth=none") {
		t.Errorf("basic auth with metrics.auth kubernetes: %v, want a refusal naming metrics.auth=none", err)
	}
}

func checkMetricsWebConfig(t *testing.T, out, monitorKey, probeAuth string) {
	t.Helper()
	objs, err := kubetest.Decode([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	var ds *appsv1.DaemonSet
	monitors := 0
	for _, o := range objs {
		switch o.GetKind() {
		case "DaemonSet":
			ds = &appsv1.DaemonSet{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, ds); err != nil {
				t.Fatal(err)
			}
		case "ServiceMonitor", "PodMonitor":
			monitors++
			key := "endpoints"
			if o.GetKind() == "PodMonitor" {
				key = "podMetricsEndpoints"
			}
			eps, _, _ := unstructured.NestedSlice(o.Object, "spec", key)
			ep := eps[0].(map[string]any)
			if ep["scheme"] != "https" || ep["tlsConfig"] == nil || ep[monitorKey] == nil {
				t.Errorf("%s endpoint %v: want https, tlsConfig and %s", o.GetKind(), ep, monitorKey)
			}
		}
	}
	if ds == nil || monitors != 2 {
		t.Fatalf("daemonset %v, %d monitors", ds != nil, monitors)
	}
	c := ds.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--web-config-file=/etc/podwarden/web/web.yml") {
		t.Errorf("args %v", c.Args)
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		if m.MountPath == "/etc/podwarden/web" && m.ReadOnly {
			for _, v := range ds.Spec.Template.Spec.Volumes {
				mounted = mounted || (v.Name == m.Name && v.Secret != nil && v.Secret.SecretName == "podwarden-web")
			}
		}
	}
	if !mounted {
		t.Errorf("the Secret podwarden-web is not mounted read-only at /etc/podwarden/web: %+v", c.VolumeMounts)
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		g := p.HTTPGet
		var got string
		for _, h := range g.HTTPHeaders {
			if h.Name == "Authorization" {
				got = h.Value
			}
		}
		if g.Scheme != corev1.URISchemeHTTPS || got != probeAuth {
			t.Errorf("%s probe %+v: want HTTPS with Authorization %q", name, g, probeAuth)
		}
	}
}

// metrics.auth kubernetes (the default) passes the flag and the bounds,
// grants the agent its reviews, makes the metrics reader, and gives both
// monitors its token; none takes all of that away and keeps the bounds.
func TestChartMetricsAuth(t *testing.T) {
	monitors := map[string]any{"serviceMonitor": map[string]any{"enabled": true}, "podMonitor": map[string]any{"enabled": true}}
	for _, tc := range []struct {
		name   string
		values map[string]any
		auth   string
		reader bool
	}{
		{"default", map[string]any{"metrics": monitors}, "kubernetes", true},
		{"none", map[string]any{"metrics": merge(monitors, map[string]any{"auth": "none"})}, "none", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := render(t, tc.values)
			objs := decodeAll(t, withoutMonitors(t, out))
			ds := find[*appsv1.DaemonSet](objs)[0]
			args := ds.Spec.Template.Spec.Containers[0].Args
			for _, want := range []string{"--metrics-auth=" + tc.auth, "--metrics-max-connections=64", "--metrics-idle-timeout=10s",
				"--metrics-read-timeout=10s", "--metrics-write-timeout=15s"} {
				if !slices.Contains(args, want) {
					t.Errorf("agent args %v lack %s", args, want)
				}
			}
			ann := ds.Spec.Template.Annotations
			if ann["podwarden.dev/metrics-auth"] != tc.auth || (ann["podwarden.dev/metrics-reader"] != "") != tc.reader {
				t.Errorf("pod annotations %v", ann)
			}
			reviews := false
			for _, r := range find[*rbacv1.ClusterRole](objs) {
				if r.Name == "podwarden" {
					for _, rule := range r.Rules {
						reviews = reviews || slices.Contains(rule.Resources, "tokenreviews")
					}
				}
			}
			var secret *corev1.Secret
			for _, s := range find[*corev1.Secret](objs) {
				secret = s
			}
			hasSA := false
			for _, sa := range find[*corev1.ServiceAccount](objs) {
				hasSA = hasSA || sa.Name == "podwarden-metrics-reader"
			}
			if reviews != tc.reader || hasSA != tc.reader || (secret != nil) != tc.reader {
				t.Errorf("reviews granted %v, metrics reader %v, token Secret %v; want all %v", reviews, hasSA, secret != nil, tc.reader)
			}
			if secret != nil && (secret.Type != corev1.SecretTypeServiceAccountToken || secret.Annotations[corev1.ServiceAccountNameKey] != "podwarden-metrics-reader") {
				t.Errorf("token Secret %+v", secret)
			}
			all, err := kubetest.Decode([]byte(out))
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range all {
				key := map[string]string{"ServiceMonitor": "endpoints", "PodMonitor": "podMetricsEndpoints"}[o.GetKind()]
				if key == "" {
					continue
				}
				eps, _, _ := unstructured.NestedSlice(o.Object, "spec", key)
				name, _, _ := unstructured.NestedString(eps[0].(map[string]any), "authorization", "credentials", "name")
				if want := map[bool]string{true: "podwarden-metrics-reader-token"}[tc.reader]; name != want {
					t.Errorf("%s authorization credentials %q, want %q", o.GetKind(), name, want)
				}
			}
		})
	}
	// NOTES.txt says how to scrape.
	for auth, want := range map[string]string{
		"kubernetes": "kubectl -n podwarden-system create token podwarden-metrics-reader --duration 10m",
		"none":       "to anyone who can\nconnect",
	} {
		if notes := renderNotes(t, map[string]any{"metrics": map[string]any{"auth": auth}}); !strings.Contains(notes, want) {
			t.Errorf("metrics.auth %s: NOTES.txt does not say %q:\n%s", auth, want, notes)
		}
	}
	if _, err := renderFor(kubetest.KubeVersion, map[string]any{"metrics": map[string]any{"auth": "basic"}}); err == nil || !strings.Contains(err.Error(), "auth") {
		t.Errorf("metrics.auth basic: %v, want the schema's refusal", err)
	}
}

func merge(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// withoutMonitors drops the Prometheus Operator objects, which client-go's
// scheme (decodeAll) does not know.
func withoutMonitors(t *testing.T, manifest string) string {
	t.Helper()
	var keep []string
	for _, doc := range strings.Split(manifest, "\n---\n") {
		if !strings.Contains(doc, "monitoring.coreos.com/") {
			keep = append(keep, doc)
		}
	}
	return strings.Join(keep, "\n---\n")
}

// renderNotes renders NOTES.txt as helm install prints it.
func renderNotes(t *testing.T, values map[string]any) string {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	install := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	install.DryRun, install.ClientOnly, install.Replace = true, true, true
	install.ReleaseName, install.Namespace = releaseName, releaseNS
	if install.KubeVersion, err = chartutil.ParseKubeVersion(kubetest.KubeVersion); err != nil {
		t.Fatal(err)
	}
	rel, err := install.Run(chrt, values)
	if err != nil {
		t.Fatal(err)
	}
	return rel.Info.Notes
}
