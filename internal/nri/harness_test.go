package nri

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"

	"podwarden/internal/syncbuf"
)

// fakeRuntime is the runtime side of NRI, driven the way containerd drives
// it (internal/nri/nri.go there): a real adaptation.Adaptation listening
// on a unix socket, a sync callback that lists the runtime's pods and
// containers and applies the updates plugins return, and
// BlockPluginSync held around every request so a plugin that is half
// registered is not skipped.
type fakeRuntime struct {
	nri    *adaptation.Adaptation
	socket string

	mu      sync.Mutex
	pods    []*api.PodSandbox
	ctrs    []*api.Container
	applied []*api.ContainerUpdate // updates returned at sync or unsolicited
}

func startRuntime(t *testing.T, dir string, pods []*api.PodSandbox, ctrs []*api.Container) *fakeRuntime {
	t.Helper()
	f := &fakeRuntime{socket: filepath.Join(dir, "nri.sock"), pods: pods, ctrs: ctrs}
	r, err := adaptation.New("podwarden-fake-runtime", "v0.0.1", f.sync, f.update,
		// Empty directories: no pre-installed plugins from the host.
		adaptation.WithPluginPath(filepath.Join(dir, "plugins")),
		adaptation.WithPluginConfigPath(filepath.Join(dir, "conf.d")),
		adaptation.WithSocketPath(f.socket),
	)
	if err != nil {
		t.Fatalf("adaptation.New: %v", err)
	}
	if err := r.Start(); err != nil {
		t.Fatalf("adaptation.Start: %v", err)
	}
	f.nri = r
	t.Cleanup(r.Stop)
	return f
}

func (f *fakeRuntime) sync(ctx context.Context, cb adaptation.SyncCB) error {
	f.mu.Lock()
	pods, ctrs := f.pods, f.ctrs
	f.mu.Unlock()
	updates, err := cb(ctx, pods, ctrs)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.applied = append(f.applied, updates...)
	f.mu.Unlock()
	return nil
}

func (f *fakeRuntime) update(_ context.Context, updates []*api.ContainerUpdate) ([]*api.ContainerUpdate, error) {
	f.mu.Lock()
	f.applied = append(f.applied, updates...)
	f.mu.Unlock()
	return nil, nil
}

func (f *fakeRuntime) appliedUpdates() []*api.ContainerUpdate {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*api.ContainerUpdate(nil), f.applied...)
}

// create runs the pod and creates the container in it, as the CRI plugin
// does for RunPodSandbox and CreateContainer.
func (f *fakeRuntime) create(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) (*api.CreateContainerResponse, error) {
	b := f.nri.BlockPluginSync()
	defer b.Unblock()
	if err := f.nri.RunPodSandbox(ctx, &api.RunPodSandboxRequest{Pod: pod}); err != nil {
		return nil, err
	}
	return f.nri.CreateContainer(ctx, &api.CreateContainerRequest{Pod: pod, Container: ctr})
}

func (f *fakeRuntime) updateResources(ctx context.Context, pod *api.PodSandbox, ctr *api.Container, res *api.LinuxResources) (*api.UpdateContainerResponse, error) {
	b := f.nri.BlockPluginSync()
	defer b.Unblock()
	return f.nri.UpdateContainer(ctx, &api.UpdateContainerRequest{Pod: pod, Container: ctr, LinuxResources: res})
}

// waitRegistered returns once the plugin has been synchronized and added
// to the runtime's plugin list. The stub's Start returns before that, so
// tests wait for the plugin's own Synchronize and then take the sync lock:
// the runtime holds it from before Synchronize until the plugin is listed.
func (f *fakeRuntime) waitRegistered(t *testing.T, synced func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !synced() {
		if time.Now().After(deadline) {
			t.Fatal("plugin did not synchronize within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	f.nri.BlockPluginSync().Unblock()
}

// kubeletContainer is a container as kubelet >= 1.28 on cgroup v2 asks for
// it: memory.oom.group=1 in the unified resources, Burstable-like adj.
func kubeletContainer(id, podID, name string) *api.Container {
	return &api.Container{
		Id: id, PodSandboxId: podID, Name: name, State: api.ContainerState_CONTAINER_CREATED,
		Linux: &api.LinuxContainer{
			Resources: &api.LinuxResources{
				Memory:  &api.LinuxMemory{Limit: api.Int64(int64(2 << 30))},
				Unified: map[string]string{OOMGroupKey: "1"},
			},
			OomScoreAdj: api.Int(999),
		},
	}
}

func testLogger(t *testing.T) *slog.Logger {
	buf := &syncbuf.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("plugin log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// runPlugin starts p against the runtime and waits until it is registered.
// The plugin stops when the test ends.
func runPlugin(t *testing.T, f *fakeRuntime, p *Plugin) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, Connection{SocketPath: f.socket, Index: "10"}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(time.Minute):
			t.Error("Run did not return within 10s of cancel")
		}
	})
	f.waitRegistered(t, func() bool { return p.Stats().Syncs > 0 })
}

// connCutter forwards unix socket connections from its own socket to
// target and can cut them all, which is what a plugin sees when the runtime
// process dies. adaptation.Stop alone closes only the listener: the
// connections of external plugins stay up until the process exits.
type connCutter struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
}

func startCutter(t *testing.T, path, target string) *connCutter {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatalf("listen %s: %v", path, err)
	}
	c := &connCutter{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); c.cut() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("unix", target)
			if err != nil {
				in.Close()
				continue
			}
			c.mu.Lock()
			c.conns = append(c.conns, in, out)
			c.mu.Unlock()
			go pipe(out, in)
			go pipe(in, out)
		}
	}()
	return c
}

// pipe copies until either side closes; the copy error is the cut itself.
func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

func (c *connCutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}
