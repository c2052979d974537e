package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func seedRoots(t *testing.T) (proc, cg string) {
	t.Helper()
	dir := t.TempDir()
	procs := seedNode(t)
	writeProcTree(t, filepath.Join(dir, "proc"), procs, seedMemTotalKB)
	container := "/kubepods/pod" + seedPodUID + "/crio-" + seedContainerID
	writeCgroupV2(t, filepath.Join(dir, "cgroup"), procs, map[string]bool{container: true})
	// The kubelet's log directory of the seed's pod, which names it.
	if err := os.MkdirAll(filepath.Join(dir, "pods", seedPodDir, "notebook"), 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "proc"), filepath.Join(dir, "cgroup")
}

// The seed pod's name, as the kubelet's /var/log/pods has it.
const (
	seedPodName = "hub/jupyter-alice"
	seedPodDir  = "hub_jupyter-alice_" + seedPodUID
)

// podLogDir is the pod log directory seedRoots wrote beside proc.
func podLogDir(proc string) string { return filepath.Join(filepath.Dir(proc), "pods") }

func TestPsPrintsTheSeedTree(t *testing.T) {
	proc, cg := seedRoots(t)
	out, errOut, code := runForTest(t, "ps", "--proc-root", proc, "--cgroup-root", cg)
	if code != 0 {
		t.Fatalf("ps failed: %s", errOut)
	}
	want, err := os.ReadFile("testdata/seed-ps.txt")
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Fatalf("ps output differs from the seed's oom_info.py output:\n got:\n%s\nwant:\n%s", out, want)
	}
}

func TestPsFilters(t *testing.T) {
	proc, cg := seedRoots(t)
	tests := []struct {
		name      string
		args      []string
		wantFirst string
		wantLines int
	}{
		{"pod UID", []string{"--pod", seedPodUID}, "[999004] conmon: 0 (-1000)", 39},
		{"pod namespace/name", []string{"--pod", seedPodName}, "[999004] conmon: 0 (-1000)", 39},
		{"pod name", []string{"--pod", "jupyter-alice"}, "[999004] conmon: 0 (-1000)", 39},
		{"namespace", []string{"-n", "hub"}, "[999004] conmon: 0 (-1000)", 39},
		{"cgroup prefix", []string{"--cgroup", "/kubepods/pod" + seedPodUID + "/crio-" + seedContainerID}, "[999026] systemd: 2 (-997)", 38},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runForTest(t, append([]string{"ps", "--proc-root", proc, "--cgroup-root", cg, "--pod-log-dir", podLogDir(proc)}, tt.args...)...)
			if code != 0 {
				t.Fatalf("ps failed: %s", errOut)
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if out == "" {
				lines = nil
			}
			if len(lines) != tt.wantLines {
				t.Fatalf("got %d lines, want %d:\n%s", len(lines), tt.wantLines, out)
			}
			if tt.wantLines > 0 && lines[0] != tt.wantFirst {
				t.Errorf("first line %q, want %q", lines[0], tt.wantFirst)
			}
		})
	}
}

// A filter that matches nothing says so on stderr, naming the filter and
// where pods were named from, and, as kubectl does, prints an empty list
// (nothing in text) and exits 0; it used to exit 1 and print no JSON at
// all, which a script could not tell from a failure.
func TestPsNoMatch(t *testing.T) {
	proc, cg := seedRoots(t)
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"pod":          {[]string{"--pod", "nope"}, "matches pod nope (pods named from " + podLogDir(proc) + ";"},
		"wrong ns":     {[]string{"--pod", "default/jupyter-alice"}, "matches pod default/jupyter-alice"},
		"namespace":    {[]string{"-n", "kube-system"}, "matches namespace kube-system"},
		"cgroup":       {[]string{"--cgroup", "/nope"}, "matches cgroup /nope"},
		"unnamed pods": {[]string{"--pod", "jupyter-alice", "--pod-log-dir", ""}, "matches pod jupyter-alice"},
		"missing dir":  {[]string{"-n", "hub", "--pod-log-dir", "/nonexistent/pods"}, "matches namespace hub (pods named from /nonexistent/pods, which does not exist"},
	} {
		for _, o := range []struct{ output, stdout string }{{"tree", ""}, {"wide", ""}, {"name", ""}, {"json", emptyPsJSON}, {"yaml", emptyPsYAML}} {
			t.Run(name+"/"+o.output, func(t *testing.T) {
				args := append([]string{"ps", "-o", o.output, "--proc-root", proc, "--cgroup-root", cg, "--pod-log-dir", podLogDir(proc)}, tc.args...)
				out, errOut, code := runForTest(t, args...)
				if code != 0 || out != o.stdout || !strings.Contains(errOut, "no process on this node "+tc.want) {
					t.Fatalf("code %d, stdout %q (want %q), stderr %q", code, out, o.stdout, errOut)
				}
			})
		}
	}
}

func TestPsJSON(t *testing.T) {
	proc, cg := seedRoots(t)
	out, errOut, code := runForTest(t, "ps", "-o", "json", "--proc-root", proc, "--cgroup-root", cg, "--pod-log-dir", podLogDir(proc))
	if code != 0 {
		t.Fatalf("ps failed: %s", errOut)
	}
	var doc struct {
		APIVersion string           `json:"apiVersion"`
		Kind       string           `json:"kind"`
		Items      []map[string]any `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.APIVersion != "podwarden.dev/v1" || doc.Kind != "ProcessList" {
		t.Errorf("apiVersion %q kind %q, want podwarden.dev/v1 ProcessList", doc.APIVersion, doc.Kind)
	}
	rows := doc.Items
	if len(rows) != 67 {
		t.Fatalf("got %d rows, want 67", len(rows))
	}
	var hog, host map[string]any
	for _, r := range rows {
		switch r["pid"].(float64) {
		case 2062665:
			hog = r
		case 1:
			host = r
		}
	}
	for _, key := range []string{"pid", "ppid", "comm", "cmdline", "state", "oom_score", "oom_score_adj", "rss_bytes", "swap_bytes", "cgroup", "pod_uid", "container_id", "qos"} {
		if _, ok := hog[key]; !ok {
			t.Errorf("pod row lacks key %q: %v", key, hog)
		}
	}
	// Unknown is absent, never "": init is in no pod and no container.
	for _, key := range []string{"pod_uid", "pod_namespace", "pod_name", "container_id", "qos"} {
		if v, ok := host[key]; ok {
			t.Errorf("pid 1 has %s = %q, want it absent", key, v)
		}
	}
	if hog == nil || hog["pod_uid"] != seedPodUID || hog["pod_namespace"] != "hub" || hog["pod_name"] != "jupyter-alice" ||
		hog["container_id"] != seedContainerID || hog["qos"] != "guaranteed" ||
		hog["rss_bytes"].(float64) != 7_450_000*1024 || hog["oom_score_adj"].(float64) != -997 {
		t.Fatalf("hog row = %v", hog)
	}
}

func TestPsWideAndExtended(t *testing.T) {
	proc, cg := seedRoots(t)
	out, _, code := runForTest(t, "ps", "-o", "wide", "--proc-root", proc, "--cgroup-root", cg, "--pod-log-dir", podLogDir(proc))
	if code != 0 || !strings.HasPrefix(out, "PID") || !strings.Contains(out, "7.1 GiB") || !strings.Contains(out, "2c6ca22c5968c") ||
		!strings.Contains(out, " "+seedPodName+" ") || strings.Contains(out, seedPodUID+" ") {
		t.Fatalf("wide output (pods by name):\n%s", out)
	}
	bare, _, code := runForTest(t, "ps", "-o", "wide", "--no-headers", "--proc-root", proc, "--cgroup-root", cg, "--pod-log-dir", podLogDir(proc))
	if code != 0 || strings.Contains(bare, "PID") || strings.Count(bare, "\n") != strings.Count(out, "\n")-1 {
		t.Fatalf("--no-headers:\n%s", bare)
	}
	yml, _, code := runForTest(t, "ps", "-o", "yaml", "--pod", seedPodName, "--proc-root", proc, "--cgroup-root", cg, "--pod-log-dir", podLogDir(proc))
	if code != 0 || !strings.HasPrefix(yml, "apiVersion: podwarden.dev/v1\nkind: ProcessList\nitems:\n") || !strings.Contains(yml, "- pid: 999004\n    ppid: ") || !strings.Contains(yml, "\n    pod_name: jupyter-alice\n") {
		t.Fatalf("yaml output:\n%s", yml)
	}
	out, _, code = runForTest(t, "ps", "--extended", "--pod", seedPodUID, "--proc-root", proc, "--cgroup-root", cg)
	if code != 0 || !strings.Contains(out, "python -c 'x = '\"'\"' '\"'\"' * 1024**3'") {
		t.Fatalf("extended output:\n%s", out)
	}
}

func TestPsBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing proc root", []string{"ps", "--proc-root", "/nonexistent/proc"}, "/nonexistent/proc"},
		{"bad output", []string{"ps", "-o", "xml"}, `--output "xml"`},
		{"bad victims output", []string{"victims", "-o", "xml"}, `--output "xml"`},
		{"victims count", []string{"victims", "--limit", "-1"}, `--limit -1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := runForTest(t, tt.args...)
			if code == 0 || !strings.Contains(errOut, tt.want) {
				t.Fatalf("code %d, stderr %q, want it to name %q", code, errOut, tt.want)
			}
		})
	}
}

// What `ps -o json|yaml` prints when no process matches: kubectl's empty
// List.
const (
	emptyPsJSON = "{\n  \"apiVersion\": \"podwarden.dev/v1\",\n  \"kind\": \"ProcessList\",\n  \"items\": []\n}\n"
	emptyPsYAML = "apiVersion: podwarden.dev/v1\nkind: ProcessList\nitems: []\n"
)
