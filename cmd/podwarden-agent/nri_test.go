package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"

	"podwarden/internal/syncbuf"
)

// startNRICmd runs "podwarden nri args..." until the returned stop is
// called; stop returns the command's error and its stderr.
func startNRICmd(t *testing.T, args ...string) (stop func() (log string, err error)) {
	t.Helper()
	errOut := &syncbuf.Buffer{}
	cmd := newNRICmd(streams{In: strings.NewReader(""), Out: &syncbuf.Buffer{}, ErrOut: errOut})
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	stopped := false
	var runErr error
	stop = func() (string, error) {
		if !stopped {
			stopped = true
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(time.Minute):
				t.Fatal("podwarden nri did not stop within 10s")
			}
		}
		return errOut.String(), runErr
	}
	t.Cleanup(func() { _, _ = stop() })
	return stop
}

// nriRuntime starts NRI's runtime side on dir/nri.sock; synced receives a
// value each time a plugin has been synchronized.
func nriRuntime(t *testing.T, dir string) (r *adaptation.Adaptation, socket string, synced chan struct{}) {
	t.Helper()
	socket = filepath.Join(dir, "nri.sock")
	synced = make(chan struct{}, 4)
	syncFn := func(ctx context.Context, cb adaptation.SyncCB) error {
		_, err := cb(ctx, nil, nil)
		synced <- struct{}{}
		return err
	}
	updateFn := func(context.Context, []*api.ContainerUpdate) ([]*api.ContainerUpdate, error) { return nil, nil }
	r, err := adaptation.New("podwarden-test", "v0", syncFn, updateFn,
		adaptation.WithPluginPath(filepath.Join(dir, "plugins")),
		adaptation.WithPluginConfigPath(filepath.Join(dir, "conf.d")),
		adaptation.WithSocketPath(socket))
	if err != nil {
		t.Fatalf("adaptation.New: %v", err)
	}
	if err := r.Start(); err != nil {
		t.Fatalf("adaptation.Start: %v", err)
	}
	t.Cleanup(r.Stop)
	// Start synchronizes the pre-installed plugins (none here) through
	// the same callback: that is not our plugin.
	<-synced
	return r, socket, synced
}

// fakeCgroupRoot makes a directory that cgroup.NewFS takes for a v2 host.
func fakeCgroupRoot(t *testing.T, v2 bool) string {
	t.Helper()
	root := t.TempDir()
	name := filepath.Join(root, "cgroup.controllers")
	if !v2 {
		if err := os.MkdirAll(filepath.Join(root, "memory"), 0o755); err != nil {
			t.Fatal(err)
		}
		name = filepath.Join(root, "memory", "cgroup.procs")
	}
	if err := os.WriteFile(name, []byte("memory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestNRICommandProtectsAtCreation(t *testing.T) {
	for _, tc := range []struct {
		name      string
		v2        bool
		wantGroup string
	}{
		{"cgroup v2", true, "0"},
		{"cgroup v1", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			policyFile := filepath.Join(dir, "policy.yaml")
			if err := os.WriteFile(policyFile, []byte("selector:\n  excludeNamespaces: [kube-system, monitoring]\npodOOMScoreAdj: 800\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			r, socket, synced := nriRuntime(t, dir)
			stop := startNRICmd(t, "--socket", socket, "--plugin-idx", "10", "--config", policyFile,
				"--oom-score-adj", "777", "--cgroup-root", fakeCgroupRoot(t, tc.v2), "--log-format", "text")
			select {
			case <-synced:
			case <-time.After(time.Minute):
				log, _ := stop()
				t.Fatalf("plugin did not connect; log:\n%s", log)
			}
			// The runtime lists the plugin only after the sync; its
			// requests take the same lock.
			r.BlockPluginSync().Unblock()

			create := func(ns string) *api.ContainerAdjustment {
				pod := &api.PodSandbox{Id: "sb-" + ns, Uid: "uid-" + ns, Name: "p", Namespace: ns}
				ctr := &api.Container{Id: "c-" + ns, PodSandboxId: pod.Id, Name: "main",
					Linux: &api.LinuxContainer{Resources: &api.LinuxResources{Unified: map[string]string{"memory.oom.group": "1"}}}}
				b := r.BlockPluginSync()
				defer b.Unblock()
				resp, err := r.CreateContainer(context.Background(), &api.CreateContainerRequest{Pod: pod, Container: ctr})
				if err != nil {
					t.Fatalf("CreateContainer in %s: %v", ns, err)
				}
				return resp.GetAdjust()
			}

			a := create("jupyter")
			if got := a.GetLinux().GetResources().GetUnified()["memory.oom.group"]; got != tc.wantGroup {
				t.Errorf("memory.oom.group = %q, want %q", got, tc.wantGroup)
			}
			// --oom-score-adj overrides the file's 800.
			if got := a.GetLinux().GetOomScoreAdj(); got == nil || got.GetValue() != 777 {
				t.Errorf("oom_score_adj = %v, want 777", got)
			}
			// The file's selector excludes monitoring.
			if a := create("monitoring"); a.GetLinux().GetOomScoreAdj() != nil || len(a.GetLinux().GetResources().GetUnified()) != 0 {
				t.Errorf("excluded namespace adjusted: %v", a)
			}

			log, err := stop()
			if err != nil {
				t.Fatalf("podwarden nri: %v\n%s", err, log)
			}
			for _, want := range []string{"nri: protected", "protected_at_creation=1"} {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %q:\n%s", want, log)
				}
			}
		})
	}
}

func TestNRICommandBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--oom-group", "sometimes"},
		{"--oom-score-adj", "2000"},
		{"--plugin-idx", "1"},
		{"--plugin-name", "has space"},
		{"--config", "/nonexistent/policy.yaml"},
		{"--log-format", "xml"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			cmd := newNRICmd(streams{In: strings.NewReader(""), Out: &syncbuf.Buffer{}, ErrOut: &syncbuf.Buffer{}})
			cmd.SetArgs(append(args, "--socket", filepath.Join(t.TempDir(), "none.sock"), "--cgroup-root", t.TempDir()))
			cmd.SilenceUsage, cmd.SilenceErrors = true, true
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := cmd.ExecuteContext(ctx); err == nil {
				t.Errorf("podwarden nri %v: no error", args)
			}
		})
	}
}
