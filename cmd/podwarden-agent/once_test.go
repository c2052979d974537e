package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"

	"podwarden/internal/cli"
)

const (
	onceUID  = "30e633b5-4140-4774-9122-1b9e140c8556"
	onceUIDU = "30e633b5_4140_4774_9122_1b9e140c8556"
	onceCID  = "2c6ca22c5968ca227b2b77480c87fa56044a98fb92280ce03e613d95b6ea505b"
)

// onceNode writes a fixture node (cgroup v2 tree, /proc, the kubelet's pod
// log directories) with two kubelet pods, systemd driver: a Burstable pod
// with a containerd container and a BestEffort pod with a CRI-O container
// and its conmon; one process in each, at the kubelet's adj.
func onceNode(t *testing.T) (procRoot, cgRoot, logDir string) {
	t.Helper()
	dir := t.TempDir()
	procRoot, cgRoot, logDir = filepath.Join(dir, "proc"), filepath.Join(dir, "cgroup"), filepath.Join(dir, "pods")
	write := func(path, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(cgRoot, "cgroup.controllers"), "cpu memory pids\n")
	write(filepath.Join(procRoot, "meminfo"), "MemTotal: 8000000 kB\n")
	other := strings.Replace(onceUID, "30e6", "40e6", 1)
	containers := []struct{ cg, comm string }{
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + onceUIDU + ".slice/cri-containerd-" + onceCID + ".scope", "python"},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + strings.ReplaceAll(other, "-", "_") + ".slice/crio-" + onceCID + ".scope", "php-fpm"},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + strings.ReplaceAll(other, "-", "_") + ".slice/crio-conmon-" + onceCID + ".scope", "conmon"},
	}
	for i, c := range containers {
		d := filepath.Join(cgRoot, c.cg)
		write(filepath.Join(d, "memory.oom.group"), "1\n")
		pid := 200 + i
		write(filepath.Join(d, "cgroup.procs"), fmt.Sprintf("%d\n", pid))
		p := filepath.Join(procRoot, fmt.Sprint(pid))
		write(filepath.Join(p, "stat"), fmt.Sprintf("%d (%s) S 1 %d %d 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 100 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n", pid, c.comm, pid, pid))
		write(filepath.Join(p, "status"), fmt.Sprintf("Name:\t%s\nTgid:\t%d\nPid:\t%d\nPPid:\t1\n", c.comm, pid, pid))
		write(filepath.Join(p, "cgroup"), "0::"+c.cg+"\n")
		write(filepath.Join(p, "oom_score_adj"), "-997\n")
	}
	if err := os.MkdirAll(filepath.Join(logDir, "ml_notebook-0_"+onceUID), 0o755); err != nil {
		t.Fatal(err)
	}
	return procRoot, cgRoot, logDir
}

func runOnce(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runOnceOn(t, onceNode, args...)
}

func runOnceOn(t *testing.T, node func(*testing.T) (string, string, string), args ...string) (string, string, int) {
	t.Helper()
	procRoot, cgRoot, logDir := node(t)
	var out, errOut bytes.Buffer
	args = append([]string{"agent", "--no-cri", "--once", "--dry-run", "--kmsg-path", "", "--proc-root", procRoot,
		"--cgroup-root", cgRoot, "--pod-log-dir", logDir, "--agent-namespace", ""}, args...)
	code := cli.Run(t.Context(), args, cli.Streams{Out: &out, ErrOut: &errOut}, commands...)
	return out.String(), errOut.String(), code
}

// --once says how many containers it found and why the others are not
// targets, in one line by default and per container with -v; it used to
// print "6 target containers / nothing to change" while every container
// was silently rejected.
func TestOnceExplainsTargets(t *testing.T) {
	out, errOut, code := runOnce(t)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.HasPrefix(out, "2 target containers of 2 found\n") {
		t.Errorf("summary line:\n%s", out)
	}
	if !strings.Contains(out, "WOULD CHANGE") || !strings.Contains(out, "ml/notebook-0") {
		t.Errorf("changes table:\n%s", out)
	}

	out, _, code = runOnce(t, "--cgroup-selector", "/kubepods.slice/kubepods-burstable.slice/**")
	if code != 0 || !strings.HasPrefix(out, "1 target containers of 2 found; not targets: 1: does not match cgroupSelector /kubepods.slice/kubepods-burstable.slice/** (-v lists every container)\n") {
		t.Errorf("narrowed summary:\n%s", out)
	}
	out, _, _ = runOnce(t, "--cgroup-selector", "/kubepods.slice/kubepods-burstable.slice/**", "-v")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^TARGET +NAMESPACE +POD +CONTAINER +CGROUP +WHY$`),
		regexp.MustCompile(`(?m)^yes +ml +notebook-0 +2c6ca22c5968c +/kubepods.slice/\S+ +kubelet container cgroup, matches cgroupSelector$`),
		regexp.MustCompile(`(?m)^no +- +40e633b5-4140-4774-9122-1b9e140c8556 +2c6ca22c5968c +/kubepods.slice/\S+ +does not match cgroupSelector`),
	} {
		if !want.MatchString(out) {
			t.Errorf("-v output does not match %s:\n%s", want, out)
		}
	}
	out, _, _ = runOnce(t, "-v", "--no-headers")
	if strings.Contains(out, "TARGET") || strings.Contains(out, "WOULD CHANGE") {
		t.Errorf("--no-headers printed headers:\n%s", out)
	}
	out, _, _ = runOnce(t, "--cgroup-selector", "/nothing/**")
	if !strings.Contains(out, "0 target containers of 2 found") || !strings.Contains(out, "nothing to change: no target containers") {
		t.Errorf("no targets must be said out loud:\n%s", out)
	}
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// checkKeys fails on any JSON object key that is not snake_case.
func checkKeys(t *testing.T, path string, v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if !snakeCase.MatchString(k) && (path != "$" || k != "apiVersion") {
				t.Errorf("%s: key %q is not snake_case", path, k)
			}
			checkKeys(t, path+"."+k, e)
		}
	case []any:
		for i, e := range v {
			checkKeys(t, fmt.Sprintf("%s[%d]", path, i), e)
		}
	}
}

// The JSON uses one naming style, snake_case, all the way down (it mixed
// dry_run with Cgroup, PodCgroup and Decision); -o yaml is the same document.
func TestOnceStructuredOutput(t *testing.T) {
	out, errOut, code := runOnce(t, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	checkKeys(t, "$", doc)
	if doc["apiVersion"] != "podwarden.dev/v1" || doc["kind"] != "AgentPass" {
		t.Errorf("apiVersion %v kind %v, want podwarden.dev/v1 AgentPass", doc["apiVersion"], doc["kind"])
	}
	validateSchema(t, "agent-once.schema.json", []byte(out))
	for _, k := range []string{"dry_run", "containers", "targets", "changes"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("no %q in %s", k, out)
		}
	}
	targets := doc["targets"].([]any)
	if len(targets) != 2 {
		t.Fatalf("targets: %v", targets)
	}
	tg := targets[1].(map[string]any)
	if tg["namespace"] != "ml" || tg["pod"] != "notebook-0" || tg["decision"].(map[string]any)["adj"] != 900.0 {
		t.Errorf("target: %v", tg)
	}
	y, _, code := runOnce(t, "-o", "yaml")
	if js, err := yaml.YAMLToJSON([]byte(y)); err != nil {
		t.Errorf("yaml: %v", err)
	} else {
		validateSchema(t, "agent-once.schema.json", js)
	}
	if code != 0 || !strings.HasPrefix(y, "apiVersion: podwarden.dev/v1\nkind: AgentPass\ndry_run: true\n") || !strings.Contains(y, "    pod_uid: \""+onceUID+"\"\n") {
		t.Errorf("yaml:\n%s", y)
	}
}

// hostileOnceNode is onceNode with the target's process and pod named by a
// hostile pod: control characters, a bidi override, a raw 8-bit CSI. (A
// fixture tree: --once walks the tree the same way on the host, and
// internal/cli's TestHostileNamesAreEscaped names a real process.)
func hostileOnceNode(t *testing.T) (procRoot, cgRoot, logDir string) {
	procRoot, cgRoot, logDir = onceNode(t)
	const comm = "\x1b[2J\u202eEVIL\x9b"
	stat := filepath.Join(procRoot, "200", "stat")
	b, err := os.ReadFile(stat)
	if err != nil {
		t.Fatal(err)
	}
	for path, content := range map[string]string{
		stat:                                     strings.Replace(string(b), "(python)", "("+comm+")", 1),
		filepath.Join(procRoot, "200", "status"): "Name:\t" + comm + "\nTgid:\t200\nPid:\t200\nPPid:\t1\n",
	} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(filepath.Join(logDir, "ml_notebook-0_"+onceUID), filepath.Join(logDir, "ml_\x1b[31mnb\u202e0\u009b_"+onceUID)); err != nil {
		t.Fatal(err)
	}
	return procRoot, cgRoot, logDir
}

// TestOnceEscapesHostileNames: a pod's and a process's names reach the
// admin's terminal through --once --dry-run escaped as dmesg does (\x1b),
// in every table; JSON carries the true name. (They were printed raw.)
func TestOnceEscapesHostileNames(t *testing.T) {
	for _, args := range [][]string{{}, {"-v"}, {"-v", "--no-headers"}} {
		out, errOut, code := runOnceOn(t, hostileOnceNode, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		for i, r := range out + errOut {
			if r < 0x20 && r != '\n' || r >= 0x7f && r <= 0x9f || r == '\u202e' || r == 0xfffd {
				t.Fatalf("%v: raw %U at %d reaches the terminal:\n%q", args, r, i, out)
			}
		}
		for _, want := range []string{`pid 200 (\x1b[2J\xe2\x80\xaeEVIL\x9b)`, `\x1b[31mnb\xe2\x80\xae0\xc2\x9b`} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: output lacks %s:\n%s", args, want, out)
			}
		}
	}
	out, _, _ := runOnceOn(t, hostileOnceNode, "-o", "json")
	if !strings.Contains(out, `"\u001b[31mnb\u202e0\u009b"`) || strings.ContainsRune(out, '\u202e') {
		t.Errorf("json: want the true pod name, \\u-escaped:\n%s", out)
	}
}

// validateSchema checks doc against docs/schemas/name.
func validateSchema(t *testing.T, name string, doc []byte) {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	sch, err := c.Compile(filepath.Join("..", "..", "docs", "schemas", name))
	if err != nil {
		t.Fatalf("compiling %s: %v", name, err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("not JSON: %v\n%s", err, doc)
	}
	if err := sch.Validate(v); err != nil {
		t.Errorf("does not match %s: %v\n%s", name, err, doc)
	}
}
