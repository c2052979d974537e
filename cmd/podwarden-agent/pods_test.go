package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-client/pkg/fake"

	"podwarden/internal/cli"
)

const (
	testPodUID = "30e633b5-4140-4774-9122-1b9e140c8556"
	testCtrID  = "2c6ca22c5968ca227b2b77480c87fa56044a98fb92280ce03e613d95b6ea505b"
)

// writeProc writes a proc root with init and one process of the test pod.
func writeProc(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	write := func(path, content string) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "meminfo"), "MemTotal: 8000000 kB\nMemFree: 4000000 kB\nMemAvailable: 4000000 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n")
	for _, p := range []struct {
		pid, ppid int
		comm, cg  string
		adj       int
	}{
		{1, 0, "systemd", "/init.scope", 0},
		{42, 1, "python", "/kubepods/burstable/pod" + testPodUID + "/" + testCtrID, 900},
	} {
		dir := filepath.Join(root, fmt.Sprint(p.pid))
		write(filepath.Join(dir, "stat"), fmt.Sprintf("%d (%s) S %d %d %d 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 1000 8192000 1000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n", p.pid, p.comm, p.ppid, p.pid, p.pid))
		write(filepath.Join(dir, "status"), fmt.Sprintf("Name:\t%s\nState:\tS (sleeping)\nTgid:\t%d\nPid:\t%d\nPPid:\t%d\nUid:\t0\t0\t0\t0\nVmRSS:\t4000 kB\nRssAnon:\t3900 kB\nRssFile:\t100 kB\nRssShmem:\t0 kB\nVmPTE:\t16 kB\nVmSwap:\t0 kB\nThreads:\t1\n", p.comm, p.pid, p.pid, p.ppid))
		write(filepath.Join(dir, "cmdline"), p.comm+"\x00")
		write(filepath.Join(dir, "oom_score"), "666\n")
		write(filepath.Join(dir, "oom_score_adj"), fmt.Sprintf("%d\n", p.adj))
		write(filepath.Join(dir, "cgroup"), "0::"+p.cg+"\n")
	}
	return root
}

func psWide(t *testing.T, proc string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	b := cli.Binary{Name: "podwarden-agent", Commands: commands, Pods: runtimePods{}}
	code := b.Run(context.Background(), []string{"ps", "-o", "wide", "--proc-root", proc, "--cgroup-root", "", "--pod-log-dir", ""},
		cli.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	if code != 0 {
		t.Fatalf("ps: code %d: %s", code, errOut.String())
	}
	return out.String()
}

// The agent's binary names pods through the runtime (no /var/log/pods in
// its container); a runtime that is not there or does not answer leaves
// the UID, without failing or hanging the command.
func TestPodsFromRuntime(t *testing.T) {
	proc := writeProc(t)

	sock := filepath.Join(t.TempDir(), "cri.sock")
	f := fake.NewFakeRemoteRuntime()
	if err := f.Start("unix://" + sock); err != nil {
		t.Fatalf("starting fake runtime: %v", err)
	}
	t.Cleanup(f.Stop)
	if _, err := f.RuntimeService.RunPodSandbox(context.Background(), &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "jupyter-alice", Uid: testPodUID, Namespace: "hub"},
	}, ""); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONTAINER_RUNTIME_ENDPOINT", "unix://"+sock)
	if out := psWide(t, proc); !strings.Contains(out, " hub/jupyter-alice ") {
		t.Errorf("runtime up: want the pod by name:\n%s", out)
	}

	t.Setenv("CONTAINER_RUNTIME_ENDPOINT", "unix://"+filepath.Join(t.TempDir(), "none.sock"))
	if out := psWide(t, proc); !strings.Contains(out, " "+testPodUID+" ") {
		t.Errorf("runtime gone: want the UID:\n%s", out)
	}

	// A socket that accepts and never answers.
	hung := filepath.Join(t.TempDir(), "hung.sock")
	ln, err := net.Listen("unix", hung)
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 16) // kept open, never answered
	t.Cleanup(func() {
		ln.Close()
		for {
			select {
			case c := <-held:
				c.Close()
			default:
				return
			}
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case held <- c:
			default:
				c.Close()
			}
		}
	}()
	t.Setenv("CONTAINER_RUNTIME_ENDPOINT", "unix://"+hung)
	if out := psWide(t, proc); !strings.Contains(out, " "+testPodUID+" ") {
		t.Errorf("runtime hung: want the UID:\n%s", out)
	}
}
