package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"podwarden/internal/syncbuf"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"podwarden/internal/cli"
	"podwarden/internal/policy"
)

// The agent's command line refuses what it cannot do before it writes
// anything. These read this machine's /proc and an empty cgroup tree;
// every case fails before the first pass.
func TestAgentCommandRefuses(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("NODE_NAME", "")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--output", "wide"}, []string{`--output "wide"`}},
		// Labels and namespaces cannot select without a runtime: refused,
		// naming the file and every key, not a silent "no targets".
		{[]string{"--no-cri", "--once", "--dry-run", "--config", "../../deploy/examples/policy.yaml"},
			[]string{"../../deploy/examples/policy.yaml", "selector.labels", "selector.excludeLabels", "selector.excludeNamespaces", "without a container runtime"}},
		{[]string{"--no-cri", "--cgroup-selector", "/podwarden-none/*", "--kube-events"}, []string{"--kube-events needs --node-name"}},
		{[]string{"--no-cri", "--cgroup-selector", "/podwarden-none/*", "--kube-events", "--node-name", "node-a"},
			[]string{"--kube-events", "KUBERNETES_SERVICE_HOST"}},
		{[]string{"--interval", "-1s"}, []string{"--interval -1s", "shorter than the minimum"}},
		{[]string{"--interval", "1000000h"}, []string{"--interval 1000000h", "longer than the maximum 24h"}},
		{[]string{"--fast-interval", "1ns"}, []string{"--fast-interval 1ns", "outside 100ms..10m"}},
		{[]string{"--fast-interval", "-1s"}, []string{"--fast-interval -1s", "outside 100ms..10m"}},
		{[]string{"--fast-interval", "0"}, []string{"--fast-interval 0s", "outside 100ms..10m"}},
		{[]string{"--kernel-log", "dmesg"}, []string{`--kernel-log "dmesg"`}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, errOut := runAgentCmd(t, tc.args...)
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q does not name %q", errOut, w)
				}
			}
		})
	}
}

func TestOwnNamespace(t *testing.T) {
	dir := t.TempDir()
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "POD_NAMESPACE" {
				return v
			}
			return ""
		}
	}
	if got := ownNamespace(env(""), dir); got != "" {
		t.Errorf("no env, no file: %q", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "namespace"), []byte("podwarden\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := ownNamespace(env(""), dir); got != "podwarden" {
		t.Errorf("from the service account file: %q", got)
	}
	if got := ownNamespace(env("ops"), dir); got != "ops" {
		t.Errorf("from $POD_NAMESPACE: %q", got)
	}
}

// runAgentCmd runs the agent command on an empty cgroup v2 tree (nothing to
// find, nothing to write) and wants it to refuse.
func runAgentCmd(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cg := t.TempDir()
	if err := os.WriteFile(filepath.Join(cg, "cgroup.controllers"), []byte("cpu memory pids\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args = append([]string{"agent", "--kmsg-path", "", "--cgroup-root", cg}, args...)
	if code := cli.Run(t.Context(), args, cli.Streams{Out: &out, ErrOut: &errOut}, commands...); code == 0 {
		t.Fatalf("exit 0, want a refusal; stdout %q", out.String())
	}
	return out.String(), errOut.String()
}

// The agent's and the NRI plugin's policy never selects the agent's own
// namespace, even when the policy file lists it.
func TestPolicyExcludesOwnNamespace(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(file, []byte("selector:\n  namespaces: [hub, podwarden]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &policyFlags{}
	fl := pflag.NewFlagSet("t", pflag.ContinueOnError)
	f.register(fl, "adj")
	if err := fl.Parse([]string{"--config", file, "--agent-namespace", "podwarden"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.load(fl)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("policy after excluding the own namespace: %v", err)
	}
	if d := cfg.Decide(policy.Target{Namespace: "podwarden", Name: "podwarden-x7k2p"}); d.Target {
		t.Errorf("the agent's own namespace is a target: %+v", d)
	}
	if d := cfg.Decide(policy.Target{Namespace: "hub", Name: "jupyter"}); !d.Target {
		t.Errorf("namespace hub lost: %+v", d)
	}
}

// TestAgentStartsPreempt: --preempt starts the pressure engine beside the
// loop, and --preempt-dry-run reaches it.
func TestAgentStartsPreempt(t *testing.T) {
	cg := t.TempDir()
	if err := os.WriteFile(filepath.Join(cg, "cgroup.controllers"), []byte("cpu memory pids\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// A free port for /metrics.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	errOut := &syncbuf.Buffer{}
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, []string{"agent", "--kmsg-path", "", "--cgroup-root", cg, "--no-cri", "--cgroup-selector", "/podwarden-none/*",
			"--preempt", "--preempt-dry-run", "--log-format", "text", "--metrics-addr", addr}, cli.Streams{Out: io.Discard, ErrOut: errOut}, commands...)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(errOut.String(), "preempt engine running") {
		select {
		case code := <-done:
			t.Fatalf("agent exited %d:\n%s", code, errOut)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no engine start-up line:\n%s", errOut)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(errOut.String(), "dry_run=true") {
		t.Errorf("--preempt-dry-run not in the engine's start-up line:\n%s", errOut)
	}
	// The engine's series are served with the agent's.
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"podwarden_preempt_psi_triggers", "podwarden_protected_containers"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d after cancel:\n%s", code, errOut)
	}
}
