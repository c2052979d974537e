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
	for bin, pkg := range map[string]string{
		small:                             "podwarden/cmd/podwarden",
		filepath.Join(dir, agentBinary):   "podwarden/cmd/podwarden-agent",
		filepath.Join(dir, clusterBinary): "podwarden/cmd/podwarden-cluster",
	} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, out)
		}
	}
	out, err := exec.Command(small, "agent", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--cgroup-selector") || !strings.Contains(string(out), "--kube-events") {
		t.Fatalf("podwarden agent --help: %v\n%s", err, out)
	}
	out, err = exec.Command(small, "image", "validate", "-l", "/nonexistent/lineage.yaml").CombinedOutput()
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
