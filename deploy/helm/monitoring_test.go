package helm_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/yaml"

	"podwarden/internal/agent"
	"podwarden/internal/kubetest"
	"podwarden/internal/preempt"
)

// allMonitoring turns on every optional monitoring object.
func allMonitoring() map[string]any {
	on := map[string]any{"enabled": true}
	return map[string]any{"metrics": map[string]any{
		"serviceMonitor": on, "podMonitor": on, "prometheusRule": on, "grafanaDashboard": on,
	}}
}

// agentMetrics are the metric names the agent registers, from the code.
func agentMetrics(t *testing.T) map[string]bool {
	t.Helper()
	ch := make(chan *prometheus.Desc, 64)
	go func() {
		reg := prometheus.NewRegistry()
		m := agent.NewMetrics(reg)
		// Describe every collector the agent registered.
		for _, c := range []prometheus.Collector{m.ProtectedContainers, m.ProtectedProcesses, m.Changes, m.DriftRepairs,
			m.OOMKills, m.ProtectedInfo, m.Reconcile, m.ProtectLatency, m.Errors, m.EventsLost, m.DependencyUp,
			m.ReportsDropped, m.KernelLogSource} {
			c.Describe(ch)
		}
		// The early-action engine's series are served on the same port.
		pm := preempt.NewMetrics(reg)
		for _, c := range []prometheus.Collector{pm.Kills, pm.Signals, pm.Episodes, pm.Refusals, pm.LadderStops, pm.Dropped, pm.Triggers} {
			c.Describe(ch)
		}
		close(ch)
	}()
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{"up": true}
	for d := range ch {
		if m := fq.FindStringSubmatch(d.String()); m != nil {
			names[m[1]] = true
		}
	}
	return names
}

var metricRef = regexp.MustCompile(`\b(podwarden_[a-z_]+|up)[{[]`)

// checkMetricNames fails for an expression that reads a series the agent
// does not export (a renamed metric leaves a silent, empty panel or an
// alert that can never fire).
func checkMetricNames(t *testing.T, where, expr string, known map[string]bool) {
	t.Helper()
	refs := metricRef.FindAllStringSubmatch(expr, -1)
	if len(refs) == 0 {
		t.Errorf("%s: %q reads no podwarden metric", where, expr)
	}
	for _, m := range refs {
		name := m[1]
		base := strings.TrimSuffix(name, "_bucket")
		if !known[name] && !known[base] {
			t.Errorf("%s: %q reads %s, which the agent does not export", where, expr, name)
		}
	}
}

var oomKind = regexp.MustCompile(`podwarden_oom_kills_total\{[^}]*\bkind="([^"]*)"`)

// checkOOMKinds fails for an expression that selects an OOM kind the
// agent never exports (the rule that waited for kind="node_host" after the
// agent's kinds became a fixed set could never fire).
func checkOOMKinds(t *testing.T, where, expr string) {
	t.Helper()
	for _, m := range oomKind.FindAllStringSubmatch(expr, -1) {
		if !slices.Contains(agent.OOMKinds, m[1]) {
			t.Errorf("%s: %q selects kind %q; the agent's kinds are %v", where, expr, m[1], agent.OOMKinds)
		}
	}
}

// ruleGroups is a Prometheus rule file (and a PrometheusRule's spec).
type ruleGroups struct {
	Groups []ruleGroup `json:"groups"`
}

type ruleGroup struct {
	Name  string `json:"name"`
	Rules []rule `json:"rules"`
}

type rule struct {
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type dashboard struct {
	UID    string `json:"uid"`
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr         string `json:"expr"`
			LegendFormat string `json:"legendFormat"`
		} `json:"targets"`
	} `json:"panels"`
}

// renderedMonitoring returns the PrometheusRule's spec and the dashboard
// the chart renders with every monitoring object on.
func renderedMonitoring(t *testing.T) (ruleGroups, dashboard, string) {
	t.Helper()
	out := render(t, allMonitoring())
	objs, err := kubetest.Decode([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	var rules ruleGroups
	var dash dashboard
	var rawDash string
	for _, o := range objs {
		switch {
		case o.GetKind() == "PrometheusRule":
			spec, _ := json.Marshal(o.Object["spec"])
			if err := json.Unmarshal(spec, &rules); err != nil {
				t.Fatal(err)
			}
		case o.GetKind() == "ConfigMap" && strings.HasSuffix(o.GetName(), "-dashboard"):
			if o.GetLabels()["grafana_dashboard"] != "1" {
				t.Errorf("dashboard ConfigMap labels %v: the Grafana sidecar looks for grafana_dashboard", o.GetLabels())
			}
			data, _ := o.Object["data"].(map[string]any)
			rawDash, _ = data["podwarden.json"].(string)
			if err := json.Unmarshal([]byte(rawDash), &dash); err != nil {
				t.Fatalf("dashboard JSON: %v", err)
			}
		case o.GetKind() == "ServiceMonitor" || o.GetKind() == "PodMonitor":
			key := "endpoints"
			if o.GetKind() == "PodMonitor" {
				key = "podMetricsEndpoints"
			}
			eps, _ := o.Object["spec"].(map[string]any)[key].([]any)
			if len(eps) != 1 || eps[0].(map[string]any)["honorLabels"] != true {
				t.Errorf("%s endpoints %v: want honorLabels: true, so the agent's pod and container labels are not renamed exported_*", o.GetKind(), eps)
			}
		}
	}
	return rules, dash, rawDash
}

func TestChartAlertsAndDashboard(t *testing.T) {
	rules, dash, _ := renderedMonitoring(t)
	known := agentMetrics(t)

	var alerts []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			checkMetricNames(t, "alert "+r.Alert, r.Expr, known)
			checkOOMKinds(t, "alert "+r.Alert, r.Expr)
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s needs a severity, a summary and a description: %+v", r.Alert, r)
			}
		}
	}
	sort.Strings(alerts)
	if want := []string{"PodwardenAgentDown", "PodwardenDriftRepairStorm", "PodwardenEarlyKillsRepeat", "PodwardenHostDaemonOOMKilled", "PodwardenPressureNotActed", "PodwardenProtectionGap"}; !slices.Equal(alerts, want) {
		t.Errorf("alerts %v, want %v", alerts, want)
	}

	var titles []string
	for _, p := range dash.Panels {
		titles = append(titles, p.Title)
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			checkMetricNames(t, "panel "+p.Title, tg.Expr, known)
			checkOOMKinds(t, "panel "+p.Title, tg.Expr)
		}
	}
	for _, want := range []string{"OOM kills by pod and kind", "Protected containers per node", "Protected processes per node", "Protection latency", "Drift repairs by node and kind", "Early kills and refusals (podwarden, before the kernel)"} {
		if !slices.Contains(titles, want) {
			t.Errorf("dashboard lacks panel %q (has %q)", want, titles)
		}
	}
	if defaults := render(t, nil); strings.Contains(defaults, "PrometheusRule") || strings.Contains(defaults, "grafana_dashboard") {
		t.Error("alerts and dashboard must be off by default")
	}
}

// TestChartAlertsPromtool checks the rendered rules with Prometheus' own
// promtool: syntax (and every dashboard query, as recording rules), then
// testdata/alerts_test.yaml feeds series through the rules and checks which
// alerts fire, with which labels and text. Debian's prometheus package
// ships promtool (hack/install-deps.sh installs it).
func TestChartAlertsPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus; make deps does)")
	}
	rules, dash, _ := renderedMonitoring(t)
	dir := t.TempDir()
	writeYAML := func(name string, v any) {
		b, err := yaml.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeYAML("rules.yaml", rules)

	// Grafana's $variables are not PromQL: give them values first.
	grafana := strings.NewReplacer("$__rate_interval", "5m", "$node", ".*")
	queries := ruleGroup{Name: "dashboard"}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			queries.Rules = append(queries.Rules, rule{Record: "dashboard:query", Expr: grafana.Replace(tg.Expr)})
		}
	}
	writeYAML("dashboard-queries.yaml", ruleGroups{Groups: []ruleGroup{queries}})
	for _, f := range []string{"rules.yaml", "dashboard-queries.yaml"} {
		if out, err := exec.Command(promtool, "check", "rules", filepath.Join(dir, f)).CombinedOutput(); err != nil {
			t.Errorf("promtool check rules %s: %v\n%s", f, err, out)
		}
	}
	unit, err := os.ReadFile("testdata/alerts_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts_test.yaml"), unit, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "test", "rules", filepath.Join(dir, "alerts_test.yaml")).CombinedOutput(); err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}
}
