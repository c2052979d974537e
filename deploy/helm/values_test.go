package helm_test

import (
	"fmt"
	"strings"
	"testing"

	"podwarden/internal/kubetest"
)

// TestChartSchema: values.schema.json lets good values through and makes
// Helm refuse bad ones with the key at fault, before anything is rendered.
func TestChartSchema(t *testing.T) {
	good := map[string]map[string]any{
		"defaults":   nil,
		"monitoring": allMonitoring(),
		"crio and nri": {
			"runtime": map[string]any{"endpoint": "unix:///var/run/crio/crio.sock", "socketDir": "/var/run/crio"},
			"nri":     map[string]any{"enabled": true, "pluginIdx": "05"},
		},
		"own policy": {"policy": map[string]any{
			"selector": map[string]any{"labels": map[string]any{"app": "latch-pods"}, "namespaces": []any{"hub"}},
			"oomGroup": "group", "podOOMScoreAdj": 500, "interval": "1m30s",
			"protected": []any{map[string]any{"comm": "sshd"}, map[string]any{"exe": "/usr/bin/node_exporter", "adj": -500}},
		}},
		"own image":          {"image": map[string]any{"repository": "registry.example.com/podwarden", "tag": "v0.1.0", "pullPolicy": "Always"}},
		"no limits":          {"resources": map[string]any{"limits": nil}},
		"unconfined":         {"appArmorProfile": map[string]any{"type": "Unconfined"}},
		"metrics web config": {"metrics": map[string]any{"webConfig": webConfigValues()}},
		"preempt": {"policy": map[string]any{"preempt": map[string]any{
			"enabled": true, "pressure": "full 50ms 500ms", "node": map[string]any{"minAvailable": "8%", "releaseAvailable": 15},
			"ladder": []any{map[string]any{"signal": "SIGTERM", "grace": "5s"}, map[string]any{"signal": "SIGKILL"}},
			"keep":   []any{"code-server"}, "messageFile": "/tmp/podwarden-oom.txt",
		}}},
		"preempt sizes": {"policy": map[string]any{"preempt": map[string]any{
			"node": map[string]any{"minAvailable": "3GiB", "criticalAvailable": "4%, 1Gi", "releaseAvailable": "20% 6GiB"},
		}}},
	}
	for name, values := range good {
		t.Run("good/"+name, func(t *testing.T) {
			if _, err := renderFor(kubetest.KubeVersion, values); err != nil {
				t.Fatalf("refused: %v", err)
			}
		})
	}
	bad := map[string]struct {
		values map[string]any
		want   string
	}{
		"typo at the top":   {map[string]any{"nodeSelecter": map[string]any{"a": "b"}}, "nodeSelecter"},
		"typo in policy":    {map[string]any{"policy": map[string]any{"podOOMScoreAjd": 900}}, "podOOMScoreAjd"},
		"mode":              {map[string]any{"policy": map[string]any{"oomGroup": "whole"}}, "oomGroup"},
		"adj range":         {map[string]any{"policy": map[string]any{"podOOMScoreAdj": 2000}}, "podOOMScoreAdj"},
		"empty rule":        {map[string]any{"policy": map[string]any{"protected": []any{map[string]any{"adj": -900}}}}, "protected"},
		"interval":          {map[string]any{"policy": map[string]any{"interval": "10 seconds"}}, "interval"},
		"port as string":    {map[string]any{"metrics": map[string]any{"port": "9808"}}, "port"},
		"port range":        {map[string]any{"metrics": map[string]any{"port": 70000}}, "port"},
		"pull policy":       {map[string]any{"image": map[string]any{"repository": "x", "pullPolicy": "Sometimes"}}, "pullPolicy"},
		"empty repository":  {map[string]any{"image": map[string]any{"repository": ""}}, "repository"},
		"plugin index":      {map[string]any{"nri": map[string]any{"pluginIdx": "7"}}, "pluginIdx"},
		"endpoint":          {map[string]any{"runtime": map[string]any{"endpoint": "tcp://10.0.0.1:1234"}}, "endpoint"},
		"log level":         {map[string]any{"logLevel": "verbose"}, "logLevel"},
		"capability":        {map[string]any{"capabilities": map[string]any{"add": []any{"cap_sys_admin"}}}, "add"},
		"preempt typo":      {map[string]any{"policy": map[string]any{"preempt": map[string]any{"enable": true}}}, "enable"},
		"preempt signal":    {map[string]any{"policy": map[string]any{"preempt": map[string]any{"ladder": []any{map[string]any{"signal": "SIGSEGV"}}}}}, "signal"},
		"preempt percent":   {map[string]any{"policy": map[string]any{"preempt": map[string]any{"node": map[string]any{"minAvailable": "ten"}}}}, "minAvailable"},
		"preempt size unit": {map[string]any{"policy": map[string]any{"preempt": map[string]any{"node": map[string]any{"minAvailable": "2PB"}}}}, "minAvailable"},
		"rule alert window": {map[string]any{"metrics": map[string]any{"prometheusRule": map[string]any{"agentDownMinutes": 0}}}, "agentDownMinutes"},
		"web config typo":   {map[string]any{"metrics": map[string]any{"webConfig": map[string]any{"secret": "x"}}}, "secret"},
		"web config tls":    {map[string]any{"metrics": map[string]any{"webConfig": map[string]any{"secretName": "x", "tls": "yes"}}}, "tls"},
		"probe header":      {map[string]any{"metrics": map[string]any{"webConfig": map[string]any{"probeAuthorization": "prometheus:secret"}}}, "probeAuthorization"},
		"web config key":    {map[string]any{"metrics": map[string]any{"webConfig": map[string]any{"key": "../web.yml"}}}, "key"},
	}
	for name, tc := range bad {
		t.Run("bad/"+name, func(t *testing.T) {
			_, err := renderFor(kubetest.KubeVersion, tc.values)
			if err == nil || !strings.Contains(err.Error(), "values don't meet the specifications of the schema") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want the schema to refuse %s", err, tc.want)
			}
		})
	}
}

// fieldSince maps fields the templates may render to the Kubernetes minor
// version that added them; add one here when a template starts using a
// newer field.
var fieldSince = map[string]int{
	"appArmorProfile:": 30, // container securityContext.appArmorProfile, GA in 1.30
}

// TestChartKubeVersion: Chart.yaml's kubeVersion is the oldest Kubernetes
// that has every field the chart renders: installs there, refuses below.
// appArmorProfile is off by default (issue 16) but a value away.
func TestChartKubeVersion(t *testing.T) {
	vals := allMonitoring()
	vals["appArmorProfile"] = map[string]any{"type": "RuntimeDefault"}
	out := render(t, vals)
	oldest := 0
	for field, minor := range fieldSince {
		if strings.Contains(out, field) {
			oldest = max(oldest, minor)
		}
	}
	if oldest == 0 {
		t.Fatal("no versioned field found; is fieldSince out of date?")
	}
	if _, err := renderFor(fmt.Sprintf("v1.%d.0", oldest), allMonitoring()); err != nil {
		t.Errorf("Kubernetes 1.%d has every field the chart uses, yet: %v", oldest, err)
	}
	_, err := renderFor(fmt.Sprintf("v1.%d.9", oldest-1), nil)
	if err == nil || !strings.Contains(err.Error(), "kubeVersion") {
		t.Errorf("Kubernetes 1.%d lacks fields the chart renders, yet the chart installs there: %v", oldest-1, err)
	}
}
