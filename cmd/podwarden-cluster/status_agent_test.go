package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"podwarden/internal/status"
)

// TestStatusReadsRealAgent runs the real podwarden-agent binary on this
// host (runtime-less, on test pod cgroups of its own, root only), makes a
// real cgroup OOM kill in one of its targets, scrapes the agent's /metrics
// over HTTP and feeds it to the status reader and table: status is built
// on what the agent really exports, not on a hand-written page. (The API
// server's pod proxy in between is covered by TestStatusAPIServer.)
func TestStatusReadsRealAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agent")
	}
	if os.Geteuid() != 0 {
		t.Skip("the agent needs root to write the test cgroups")
	}
	memRoot, v2 := "/sys/fs/cgroup/memory", false
	if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil && strings.Contains(string(b), "memory") {
		memRoot, v2 = "/sys/fs/cgroup", true
	} else if _, err := os.Stat(memRoot); err != nil {
		t.Skip("no memory cgroup controller here")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "podwarden-agent")
	if out, err := exec.Command("go", "build", "-o", bin, "podwarden/cmd/podwarden-agent").CombinedOutput(); err != nil {
		t.Fatalf("building the agent: %v\n%s", err, out)
	}

	const (
		uidNB    = "5b1f0c4e-7a1d-4c39-9f0e-1c2d3e4f5a61"
		uidBatch = "6c2f0c4e-7a1d-4c39-9f0e-1c2d3e4f5a62"
		cid      = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa99887766554433221100"
	)
	prefix := fmt.Sprintf("/podwarden-status-test-%d", os.Getpid())
	nb := prefix + "/kubepods/burstable/pod" + uidNB + "/" + cid
	batch := prefix + "/kubepods/besteffort/pod" + uidBatch + "/" + cid
	t.Cleanup(func() { removeCgroups(filepath.Join(memRoot, prefix)) })
	var sleepers []*exec.Cmd
	t.Cleanup(func() {
		for _, c := range sleepers {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	})
	for _, cg := range []string{nb, batch} {
		if err := os.MkdirAll(filepath.Join(memRoot, cg), 0o755); err != nil {
			t.Fatal(err)
		}
		c := exec.Command("sh", "-c", "echo $$ > "+filepath.Join(memRoot, cg, "cgroup.procs")+" && exec sleep 300")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		sleepers = append(sleepers, c)
	}
	// The kubelet's pod log directories name the notebook pod; the batch
	// pod has none, so it stays its UID.
	logDir := filepath.Join(dir, "pods")
	if err := os.MkdirAll(filepath.Join(logDir, "ml_notebook-0_"+uidNB), 0o755); err != nil {
		t.Fatal(err)
	}
	policyFile := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyFile, []byte("protected: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeLoopback(t)
	agent := exec.Command(bin, "agent", "--no-cri", "--cgroup-selector", prefix+"/kubepods/**", "--config", policyFile,
		"--pod-log-dir", logDir, "--metrics-addr", addr, "--fast-interval", "200ms", "--log-format", "text", "--agent-namespace", "")
	var agentLog bytes.Buffer
	agent.Stderr = &agentLog
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = agent.Process.Kill()
		_ = agent.Wait()
		if t.Failed() {
			t.Logf("agent log:\n%s", agentLog.String())
		}
	})
	scrape := func() (status.AgentMetrics, string) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return status.AgentMetrics{}, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m, err := status.ParseMetrics(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("status cannot parse the agent's /metrics: %v", err)
		}
		return m, string(b)
	}
	var m status.AgentMetrics
	waitUntil(t, 60*time.Second, "the agent protecting both containers", func() bool {
		m, _ = scrape()
		return m.ProtectedContainers == 2 && len(m.ProtectedPods) == 2
	})

	// A real OOM kill in the notebook's container: a 20 MiB limit and a
	// process that wants 100 MiB.
	limit, limitFile := "20M", "memory.limit_in_bytes"
	if v2 {
		limitFile = "memory.max"
	}
	if err := os.WriteFile(filepath.Join(memRoot, nb, limitFile), []byte(limit), 0); err != nil {
		t.Fatalf("setting a memory limit: %v", err)
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed: no OOM kill to count")
	}
	hog := exec.Command("sh", "-c", "echo $$ > "+filepath.Join(memRoot, nb, "cgroup.procs")+" && exec "+py+" -c 'x = bytearray(100 << 20)'")
	if err := hog.Run(); err == nil {
		t.Fatal("the hog was not OOM-killed")
	}
	var page string
	waitUntil(t, 60*time.Second, "the OOM kill on /metrics", func() bool {
		m, page = scrape()
		return m.OOMKillsTotal >= 1
	})
	if want := []string{uidBatch, "ml/notebook-0"}; strings.Join(m.ProtectedPods, ",") != strings.Join(want, ",") {
		t.Errorf("protected pods %v, want %v", m.ProtectedPods, want)
	}
	if len(m.OOMKills) != 1 || m.OOMKills[0].Namespace != "ml" || m.OOMKills[0].Pod != "notebook-0" ||
		m.OOMKills[0].Container != cid[:13] || m.OOMKills[0].Kind == "" {
		t.Errorf("OOM kills %+v, want one in ml/notebook-0", m.OOMKills)
	}
	if m.Version == "" {
		t.Errorf("no version from podwarden_build_info in:\n%s", page)
	}
	var out bytes.Buffer
	st := status.Cluster{Namespace: "podwarden-system", Agents: []status.Agent{{Node: "node-a", Pod: "podwarden-x1", Ready: true, Metrics: &m}}}
	if err := writeStatus(&out, st, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"node-a  podwarden-x1  yes    0         2          ",
		"node-a  " + uidBatch + ", ml/notebook-0",
		"node-a  ml/notebook-0  " + cid[:13] + "  " + m.OOMKills[0].Kind + "  1",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status table does not show %q:\n%s", want, out.String())
		}
	}
	t.Logf("podwarden status from the real agent:\n%s", out.String())
}

func freeLoopback(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func waitUntil(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !ok(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

// removeCgroups removes a test cgroup tree leaf-first, once its processes
// are gone.
func removeCgroups(root string) {
	var dirs []string
	_ = filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		for try := 0; try < 50 && os.Remove(dirs[i]) != nil; try++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
}
