package helm_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"podwarden/internal/kubetest"
	"podwarden/internal/policy"
)

// outsideRow is one policy value the agent refuses. The chart must refuse
// it too, naming the key, or "helm install" succeeds and every agent pod
// crash-loops on a policy it will not load (issue 22).
type outsideRow struct {
	path  string // below policy, dotted; a list index as ".0"
	value any
	gap   string // why the schema cannot refuse it yet; the row is skipped
	// dropped: Helm's toYaml cannot write the value and renders the
	// policy empty (it swallows the error), so the agent would run its
	// defaults instead of what was asked, silently.
	dropped bool
	// cross: the value is out of order with another key's; the chart's
	// template refuses it (podwarden.checkThresholds), schema or not.
	cross bool
}

// outsideRows are values one step outside each key's range, and hostile
// forms. Every leaf of values.yaml's policy has a row (TestSchemaPolicyRowsCoverEveryKey).
func outsideRows() []outsideRow {
	var rows []outsideRow
	for _, dom := range []string{"node", "container"} {
		p := "preempt." + dom + "."
		rows = append(rows,
			outsideRow{path: p + "minAvailable", value: "150%"},
			outsideRow{path: p + "minAvailable", value: "50.01%"},
			outsideRow{path: p + "minAvailable", value: "51"},
			outsideRow{path: p + "minAvailable", value: "0.99%"},
			outsideRow{path: p + "minAvailable", value: "0%"},
			outsideRow{path: p + "minAvailable", value: 0},
			outsideRow{path: p + "minAvailable", value: 51},
			outsideRow{path: p + "minAvailable", value: 0.5},
			outsideRow{path: p + "minAvailable", value: "-1%"},
			outsideRow{path: p + "minAvailable", value: "10% 2GiB 3"},
			outsideRow{path: p + "minAvailable", value: "10% 20%"},
			outsideRow{path: p + "minAvailable", value: "2GiB 1GiB"},
			outsideRow{path: p + "minAvailable", value: "abc"},
			outsideRow{path: p + "minAvailable", value: "0GiB"},
			outsideRow{path: p + "minAvailable", value: "2PiB"},
			outsideRow{path: p + "minAvailable", value: "5000000TiB"},
			outsideRow{path: p + "minAvailable", value: "99999999999999999999Ki"},
			outsideRow{path: p + "minAvailable", value: "NaN%"},
			outsideRow{path: p + "minAvailable", value: "Inf"},
			outsideRow{path: p + "minAvailable", value: "10%\n2GiB"},
			outsideRow{path: p + "minAvailable", value: ""},
			outsideRow{path: p + "criticalAvailable", value: "50.5%"},
			outsideRow{path: p + "criticalAvailable", value: "-1%"},
			outsideRow{path: p + "criticalAvailable", value: -0.5},
			outsideRow{path: p + "criticalAvailable", value: 50.5},
			outsideRow{path: p + "criticalAvailable", value: "1.5G 1%, 2%"},
			outsideRow{path: p + "releaseAvailable", value: "90.5%"},
			outsideRow{path: p + "releaseAvailable", value: 91},
			outsideRow{path: p + "releaseAvailable", value: "0%"},
			outsideRow{path: p + "releaseAvailable", value: "1e3%"},
			outsideRow{path: p + "releaseAvailable", value: "4PB"},
		)
	}
	return append(rows,
		outsideRow{path: "oomGroup", value: "all"},
		outsideRow{path: "podOOMScoreAdj", value: 1001},
		outsideRow{path: "podOOMScoreAdj", value: -1001},
		outsideRow{path: "podOOMScoreAdj", value: "900"},
		outsideRow{path: "annotationMinAdj", value: 1001},
		outsideRow{path: "annotationMinAdj", value: 1.5},
		outsideRow{path: "protected.0.adj", value: -1001},
		outsideRow{path: "protected.0.comm", value: ""},
		outsideRow{path: "protected.0.comm", value: "ssh\u202ed"},
		outsideRow{path: "protected.0.comm", value: "sshd\x00"},
		outsideRow{path: "protected.0.comm", value: "sshd\ufffe", dropped: true},
		outsideRow{path: "protected.0.exe", value: "sshd"},
		outsideRow{path: "protected.0.exe", value: "/usr/bin/\u0080", dropped: true},
		outsideRow{path: "protected.0.cgroup", value: "/system.slice/[ssh"},
		outsideRow{path: "protected.0.cgroup", value: "/system.slice/\ufffe", dropped: true},
		outsideRow{path: "interval", value: "99ms"},
		outsideRow{path: "interval", value: "24h0m1s"},
		outsideRow{path: "interval", value: "10"},
		outsideRow{path: "cgroupSelector", value: "/kubepods/[burstable"},
		outsideRow{path: "cgroupSelector", value: "/**", gap: "which cgroups a glob reaches is known only to the agent (policy.checkCgroupSelector)"},
		outsideRow{path: "selector.labels", value: map[string]any{"app": "a b"}},
		outsideRow{path: "selector.labels", value: map[string]any{"-app": "x"}},
		outsideRow{path: "selector.excludeLabels", value: map[string]any{"a/b/c": "x"}},
		outsideRow{path: "selector.namespaces", value: []any{"Hub"}},
		// Above the default releaseAvailable 20% / minAvailable 256MiB: the
		// order of the three thresholds is checked by the template.
		outsideRow{path: "preempt.node.minAvailable", value: "25%", cross: true},
		outsideRow{path: "preempt.node.minAvailable", value: "5GiB", cross: true},
		outsideRow{path: "preempt.container.criticalAvailable", value: "300MiB", cross: true},
		outsideRow{path: "preempt.container.criticalAvailable", value: 5, cross: true},
		outsideRow{path: "selector.namespaces", value: []any{"kube-system"}, gap: "in both namespaces and excludeNamespaces: a cross-key check"},
		outsideRow{path: "selector.excludeNamespaces", value: []any{"a_b"}},
		outsideRow{path: "preempt.enabled", value: "yes"},
		outsideRow{path: "preempt.dryRun", value: 1},
		outsideRow{path: "preempt.mrelease", value: "true"},
		outsideRow{path: "preempt.keepInit", value: "no"},
		outsideRow{path: "preempt.pressure", value: "some 100ms 499ms"},
		outsideRow{path: "preempt.pressure", value: "some 100ms 10.1s"},
		outsideRow{path: "preempt.pressure", value: "full 2s 1s"},
		outsideRow{path: "preempt.pressure", value: "some 0s 1s"},
		outsideRow{path: "preempt.pressure", value: "partial 100ms 1s"},
		outsideRow{path: "preempt.ladder", value: []any{map[string]any{"signal": "SIGTERM", "grace": "1s"}}},
		outsideRow{path: "preempt.ladder", value: []any{map[string]any{"signal": "SIGKILL"}, map[string]any{"signal": "SIGTERM"}}},
		outsideRow{path: "preempt.ladder", value: []any{}},
		outsideRow{path: "preempt.ladder.0.signal", value: "SIGSEGV"},
		outsideRow{path: "preempt.ladder.0.grace", value: "1m0.001s"},
		outsideRow{path: "preempt.ladder.0.grace", value: "-1s"},
		outsideRow{path: "preempt.cooldown", value: "999ms"},
		outsideRow{path: "preempt.cooldown", value: "1h0m1s"},
		outsideRow{path: "preempt.growthWindow", value: "4.9s"},
		outsideRow{path: "preempt.growthWindow", value: "11m"},
		outsideRow{path: "preempt.keep", value: []any{""}},
		outsideRow{path: "preempt.keep", value: []any{"jupyter-[lab"}},
		outsideRow{path: "preempt.keep", value: []any{"[^]"}},
		outsideRow{path: "preempt.keep", value: []any{"jupyter\u009f"}, dropped: true},
		outsideRow{path: "preempt.messageFile", value: "tmp/oom.txt"},
		outsideRow{path: "preempt.messageFile", value: "/tmp/../etc/oom.txt"},
		outsideRow{path: "preempt.messageFile", value: "/proc/self/oom.txt"},
		outsideRow{path: "preempt.messageFile", value: "/"},
		outsideRow{path: "preempt.messageFile", value: "/tmp/oom\u007f.txt", dropped: true},
	)
}

// TestSchemaPolicyOutsideRange: for each row, the agent refuses the policy
// the chart renders (with the schema skipped, as an older Helm or
// --skip-schema-validation would), and the schema refuses the value,
// naming its key, so "helm install" fails instead of the DaemonSet.
func TestSchemaPolicyOutsideRange(t *testing.T) {
	for _, row := range outsideRows() {
		t.Run(fmt.Sprintf("%s=%#v", row.path, row.value), func(t *testing.T) {
			values := policyValues(t, row.path, row.value)
			if row.cross {
				checkCrossKey(t, row, values)
				return
			}
			cfg, err := renderPolicy(t, values)
			if err != nil {
				// Out of range is often out of order too: the template's
				// order check (podwarden.checkThresholds) refused it first.
				if row.dropped || !strings.Contains(err.Error(), "must be") {
					t.Fatalf("rendering without the schema: %v", err)
				}
				cfg = mergedPolicy(t, values)
			}
			_, perr := policy.Parse(strings.NewReader(cfg), "policy.yaml")
			if row.dropped {
				if strings.TrimSpace(cfg) != "" {
					t.Fatalf("the chart renders the policy; the row is not one toYaml drops:\n%s", cfg)
				}
				perr = errors.New("the chart renders an empty policy")
			}
			if perr == nil {
				t.Fatalf("the agent accepts this policy; the row is not outside the range:\n%s", cfg)
			}
			if row.gap != "" {
				t.Skipf("the agent refuses it (%v) but the schema cannot: %s", perr, row.gap)
			}
			_, err = renderFor(kubetest.KubeVersion, values)
			key := row.path[strings.LastIndexByte(row.path, '.')+1:]
			if isIndex(key) {
				key = strings.TrimSuffix(row.path, "."+key)
				key = key[strings.LastIndexByte(key, '.')+1:]
			}
			if err == nil {
				t.Fatalf("helm template accepts it; the agent refuses it: %v", perr)
			}
			if !strings.Contains(err.Error(), "values don't meet the specifications of the schema") || !strings.Contains(err.Error(), key) {
				t.Fatalf("err %v, want the schema to refuse %s", err, key)
			}
		})
	}
}

// TestSchemaPolicyRowsCoverEveryKey: a key added to values.yaml's policy
// without a row in outsideRows would be unchecked.
func TestSchemaPolicyRowsCoverEveryKey(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var vals map[string]any
	if err := yaml.Unmarshal(b, &vals); err != nil {
		t.Fatalf("reading values.yaml: %v", err)
	}
	covered := map[string]bool{}
	for _, row := range outsideRows() {
		covered[dropIndexes(row.path)] = true
	}
	var missing []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if m, ok := v.(map[string]any); ok && !covered[prefix] {
			for k, sub := range m {
				walk(strings.TrimPrefix(prefix+"."+k, "."), sub)
			}
			return
		}
		if l, ok := v.([]any); ok && !covered[prefix] && len(l) > 0 {
			if m, ok := l[0].(map[string]any); ok {
				for k := range m {
					if !covered[prefix+"."+k] {
						missing = append(missing, prefix+"."+k)
					}
				}
				return
			}
		}
		if !covered[prefix] {
			missing = append(missing, prefix)
		}
	}
	walk("", vals["policy"])
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("policy keys with no row in outsideRows: %s", strings.Join(missing, ", "))
	}
}

// TestSchemaPolicyAcceptsInRange: what the agent accepts keeps rendering:
// the defaults (TestChartSchema has the documented examples) and a value
// at each end of each range.
func TestSchemaPolicyAcceptsInRange(t *testing.T) {
	for _, tc := range []struct {
		path  string
		value any
	}{
		// Below the default releaseAvailable (20%) and above criticalAvailable
		// (4%): the order of the three is not the schema's to check.
		{"preempt.node.minAvailable", "19.99%"},
		{"preempt.node.minAvailable", 5},
		{"preempt.node.minAvailable", "0% 2GiB"},
		{"preempt.node.minAvailable", "2GiB,10%"},
		{"preempt.container.criticalAvailable", 0},
		{"preempt.container.criticalAvailable", "0"},
		{"preempt.node.releaseAvailable", "90% 4GiB"},
		{"preempt.node.releaseAvailable", "20% 999999TiB"},
		{"interval", "100ms"},
		{"interval", "24h"},
		{"interval", "1m30s"},
		{"preempt.pressure", "full 10s 10s"},
		{"preempt.pressure", "some 1ms 500ms"},
		{"preempt.cooldown", "1s"},
		{"preempt.cooldown", "1h"},
		{"preempt.cooldown", "59m59.5s"},
		{"preempt.growthWindow", "5s"},
		{"preempt.growthWindow", "10m"},
		{"preempt.ladder.0.grace", "1m"},
		{"preempt.ladder.0.grace", "0s"},
		{"preempt.ladder", []any{map[string]any{"signal": "SIGKILL"}}},
		{"preempt.messageFile", "/tmp/podwarden-oom.txt"},
		{"preempt.keep", []any{"python*", "[jJ]upyter-*"}},
		{"selector.labels", map[string]any{"example.com/team": "ml", "app": "*"}},
		{"protected.0.comm", "Web Content"},
	} {
		t.Run(fmt.Sprintf("%s=%#v", tc.path, tc.value), func(t *testing.T) {
			values := policyValues(t, tc.path, tc.value)
			cfg, err := renderPolicy(t, values)
			if err != nil {
				t.Fatalf("rendering without the schema: %v", err)
			}
			if _, err := policy.Parse(strings.NewReader(cfg), "policy.yaml"); err != nil {
				t.Fatalf("the agent refuses it, fix the row: %v", err)
			}
			if _, err := renderFor(kubetest.KubeVersion, values); err != nil {
				t.Fatalf("the agent accepts it, the schema refuses it: %v", err)
			}
		})
	}
}

// policyValues are the chart's values with one key below policy set, on a
// copy of values.yaml's policy so a list index reaches a default entry.
func policyValues(t *testing.T, path string, value any) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var vals map[string]any
	if err := yaml.Unmarshal(b, &vals); err != nil {
		t.Fatalf("reading values.yaml: %v", err)
	}
	var cur any = vals["policy"]
	parts := strings.Split(path, ".")
	for i, p := range parts {
		last := i == len(parts)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				c[p] = value
			} else {
				cur = c[p]
			}
		case []any:
			var n int
			if _, err := fmt.Sscanf(p, "%d", &n); err != nil || n >= len(c) {
				t.Fatalf("%s: %q is not an index of a list of %d", path, p, len(c))
			}
			if last {
				c[n] = value
			} else {
				cur = c[n]
			}
		default:
			t.Fatalf("%s: %q is below a %T", path, p, cur)
		}
	}
	return map[string]any{"policy": vals["policy"]}
}

// renderPolicy renders the chart as "helm template --skip-schema-validation"
// does and returns the agent's policy.yaml from the ConfigMap.
func renderPolicy(t *testing.T, values map[string]any) (string, error) {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		return "", fmt.Errorf("loading chart: %w", err)
	}
	kv, err := chartutil.ParseKubeVersion(kubetest.KubeVersion)
	if err != nil {
		return "", err
	}
	install := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	install.DryRun, install.ClientOnly, install.Replace = true, true, true
	install.ReleaseName, install.Namespace, install.KubeVersion = releaseName, releaseNS, kv
	install.SkipSchemaValidation = true
	rel, err := install.Run(chrt, values)
	if err != nil {
		return "", fmt.Errorf("rendering chart: %w", err)
	}
	for _, obj := range decodeAll(t, rel.Manifest) {
		if cm, ok := obj.(*corev1.ConfigMap); ok {
			return cm.Data["policy.yaml"], nil
		}
	}
	return "", errors.New("no ConfigMap rendered")
}

func isIndex(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

func dropIndexes(path string) string {
	parts := strings.Split(path, ".")
	return strings.Join(slices.DeleteFunc(parts, isIndex), ".")
}

// checkCrossKey: the agent refuses the policy the values make with the
// chart's defaults, and both renders (with and without the schema) fail
// naming the key.
func checkCrossKey(t *testing.T, row outsideRow, values map[string]any) {
	t.Helper()
	cfg := mergedPolicy(t, values)
	if _, perr := policy.Parse(strings.NewReader(cfg), "policy.yaml"); perr == nil {
		t.Fatalf("the agent accepts this policy; the row is not out of order:\n%s", cfg)
	}
	key := "policy." + row.path
	if _, err := renderPolicy(t, values); err == nil || !strings.Contains(err.Error(), key) {
		t.Errorf("helm template --skip-schema-validation: err %v, want a failure naming %s", err, key)
	}
	if _, err := renderFor(kubetest.KubeVersion, values); err == nil || !strings.Contains(err.Error(), key) {
		t.Errorf("helm template: err %v, want a failure naming %s", err, key)
	}
}

// mergedPolicy is the policy the agent would get from values over the
// chart's defaults, for values the chart refuses to render.
func mergedPolicy(t *testing.T, values map[string]any) string {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	merged, err := chartutil.CoalesceValues(chrt, values)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := yaml.Marshal(merged["policy"])
	if err != nil {
		t.Fatal(err)
	}
	return string(cfg)
}
