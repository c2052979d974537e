package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDelegation builds the three binaries side by side and checks that
// the small one runs the others for their commands, arguments intact, and
// says what is missing when one is not there.
func TestDelegation(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds three binaries")
	}
	dir := t.TempDir()
	small := filepath.Join(dir, "podwarden")
	build(t, dir, "v1.2.3", "v1.2.3", "v1.2.3")
	// text/template's evaluator reaches methods by reflection, so linking
	// it keeps every exported method of the binary (+2.2 MB measured): a
	// cobra template (SetVersionTemplate, SetUsageTemplate) brings it in.
	if syms, err := exec.Command("go", "tool", "nm", small).Output(); err != nil {
		t.Fatalf("go tool nm: %v", err)
	} else if strings.Contains(string(syms), "text/template.(*state).evalCall") {
		t.Error("podwarden links text/template's evaluator: a custom cobra template disables dead-code elimination")
	}
	out, err := exec.Command(small, "agent", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--cgroup-selector") || !strings.Contains(string(out), "--kube-events") {
		t.Fatalf("podwarden agent --help: %v\n%s", err, out)
	}
	out, err = exec.Command(small, "image", "validate", "-f", "/nonexistent/lineage.yaml").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "/nonexistent/lineage.yaml") {
		t.Fatalf("arguments were not passed through: %v\n%s", err, out)
	}
	out, err = exec.Command(small, "nri", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--plugin-idx") {
		t.Fatalf("podwarden nri --help: %v\n%s", err, out)
	}
	out, err = exec.Command(small, "ps", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--extended") {
		t.Fatalf("podwarden ps --help: %v\n%s", err, out)
	}

	alone := filepath.Join(t.TempDir(), "podwarden")
	if out, err := exec.Command("cp", small, alone).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	cmd := exec.Command(alone, "status")
	cmd.Env = []string{"PATH=/nonexistent"}
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "podwarden status needs podwarden-cluster") {
		t.Fatalf("missing podwarden-cluster: %v\n%s", err, out)
	}
	cmd = exec.Command(alone, "agent", "--once")
	cmd.Env = []string{"PATH=/nonexistent"}
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "podwarden agent needs podwarden-agent") {
		t.Fatalf("missing podwarden-agent: %v\n%s", err, out)
	}
}

// build builds the three binaries into dir, each stamped with its version
// the way `make build` does.
func build(t *testing.T, dir, small, agent, cluster string) {
	t.Helper()
	for _, b := range []struct{ bin, pkg, version string }{
		{"podwarden", "podwarden/cmd/podwarden", small},
		{agentBinary, "podwarden/cmd/podwarden-agent", agent},
		{clusterBinary, "podwarden/cmd/podwarden-cluster", cluster},
	} {
		cmd := exec.Command("go", "build", "-ldflags", "-X podwarden/internal/cli.version="+b.version, "-o", filepath.Join(dir, b.bin), b.pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", b.pkg, err, out)
		}
	}
}

// TestVersions: --version on every binary, and `podwarden version` shows
// all three and warns when they differ.
func TestVersions(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds three binaries")
	}
	dir := t.TempDir()
	build(t, dir, "v1.2.3", "v1.2.3", "v1.2.2")
	for bin, want := range map[string]string{"podwarden": "podwarden version v1.2.3\n", agentBinary: "podwarden-agent version v1.2.3\n", clusterBinary: "podwarden-cluster version v1.2.2\n"} {
		out, err := exec.Command(filepath.Join(dir, bin), "--version").CombinedOutput()
		if err != nil || string(out) != want {
			t.Errorf("%s --version: %v %q, want %q", bin, err, out, want)
		}
	}
	cmd := exec.Command(filepath.Join(dir, "podwarden"), "version")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("podwarden version: %v %s", err, stderr.String())
	}
	for _, want := range []string{"podwarden          v1.2.3", "podwarden-agent    v1.2.3", "podwarden-cluster  v1.2.2", filepath.Join(dir, clusterBinary)} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("podwarden version lacks %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "warning: podwarden is v1.2.3 but podwarden-cluster is v1.2.2") {
		t.Errorf("no warning about the mismatch: %q", stderr.String())
	}

	build(t, dir, "v1.2.3", "v1.2.3", "v1.2.3")
	out, err := exec.Command(filepath.Join(dir, "podwarden"), "version").CombinedOutput()
	if err != nil || strings.Contains(string(out), "warning") || strings.Count(string(out), "v1.2.3") != 3 {
		t.Errorf("matching binaries: %v\n%s", err, out)
	}
	alone := filepath.Join(t.TempDir(), "podwarden")
	if out, err := exec.Command("cp", filepath.Join(dir, "podwarden"), alone).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	cmd = exec.Command(alone, "version")
	cmd.Env = []string{"PATH=/nonexistent"}
	out, err = cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "podwarden-agent    -") || !strings.Contains(string(out), "not found next to this binary or on PATH") {
		t.Errorf("missing companions: %v\n%s", err, out)
	}
}

// TestCompletion: `podwarden agent|nri|image|status` complete from the
// binary that has them, through cobra's __complete protocol.
func TestCompletion(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds three binaries")
	}
	dir := t.TempDir()
	build(t, dir, "dev", "dev", "dev")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"agent", "--cgroup-s"}, "--cgroup-selector"},
		{[]string{"nri", "--plugin-"}, "--plugin-idx"},
		{[]string{"image", "val"}, "validate"},
		{[]string{"image", "validate", "--lin"}, "--lineage"},
		{[]string{"status", "--sel"}, "--selector"},
		{[]string{"victims", "--exit"}, "--exit-code"},
		{[]string{"ag"}, "agent"},
	} {
		out, err := exec.Command(filepath.Join(dir, "podwarden"), append([]string{"__complete"}, tc.args...)...).Output()
		if err != nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("podwarden __complete %v: %v\n%s", tc.args, err, out)
		}
	}
	// The generated script works: bash runs it and registers the function.
	script, err := exec.Command(filepath.Join(dir, "podwarden"), "completion", "bash").Output()
	if err != nil || !strings.Contains(string(script), "__start_podwarden") {
		t.Fatalf("completion bash: %v", err)
	}
	for _, bin := range []string{agentBinary, clusterBinary} {
		script, err := exec.Command(filepath.Join(dir, bin), "completion", "bash").Output()
		fn := "-F __start_" + bin + " " + bin
		if err != nil || !strings.Contains(string(script), fn) {
			t.Errorf("%s completion bash does not define %s: %v", bin, fn, err)
		}
	}
}
