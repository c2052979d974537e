package nri

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"

	"podwarden/internal/policy"
)

func newPlugin(t *testing.T, cfg Config) *Plugin {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = testLogger(t)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

// events records what OnEvent reports.
type events struct {
	mu  sync.Mutex
	evs []Event
}

func (e *events) add(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evs = append(e.evs, ev)
}

func (e *events) all() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Event(nil), e.evs...)
}

func TestCreateContainerThroughRuntime(t *testing.T) {
	f := startRuntime(t, t.TempDir(), nil, nil)
	var got events
	p := newPlugin(t, Config{Policy: policy.Default(), CgroupV2: true, OnEvent: got.add})
	runPlugin(t, f, p)

	tests := []struct {
		name        string
		pod         *api.PodSandbox
		wantGroup   string // "-": memory.oom.group as kubelet asked (1)
		wantAdj     string // "-": no oom_score_adj adjustment
		wantProtect bool
	}{
		{"target", pod("jupyter", nil), "0", "900", true},
		{"kube-system excluded", pod("kube-system", nil), "-", "-", false},
		{"annotation group", pod("ml", map[string]string{policy.AnnotationOOMKill: "group"}), "1", "900", true},
		{"annotation leave", pod("web", map[string]string{policy.AnnotationOOMKill: "leave"}), "-", "900", true},
		{"bad annotation", pod("lab", map[string]string{policy.AnnotationOOMKill: "sometimes"}), "0", "900", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctr := kubeletContainer("ctr-"+tc.pod.GetNamespace(), tc.pod.GetId(), "main")
			resp, err := f.create(context.Background(), tc.pod, ctr)
			if err != nil {
				t.Fatalf("CreateContainer failed: %v", err)
			}
			w := describe(resp.GetAdjust())
			if w.oomGroup != tc.wantGroup || w.adj != tc.wantAdj {
				t.Errorf("adjustment oom.group=%s adj=%s, want oom.group=%s adj=%s",
					w.oomGroup, w.adj, tc.wantGroup, tc.wantAdj)
			}
			if len(resp.GetUpdate()) != 0 {
				t.Errorf("unexpected updates of other containers: %v", resp.GetUpdate())
			}
			evs := got.all()
			protected := len(evs) > 0 && evs[len(evs)-1].ContainerID == ctr.GetId()
			if protected != tc.wantProtect {
				t.Errorf("OnEvent for this container: %v, want %v", protected, tc.wantProtect)
			}
			if protected {
				ev := evs[len(evs)-1]
				if ev.Phase != PhaseCreate || ev.Pod.PodUID != tc.pod.GetUid() || ev.Pod.Namespace != tc.pod.GetNamespace() {
					t.Errorf("event %+v: want phase create for pod %s/%s", ev, tc.pod.GetNamespace(), tc.pod.GetUid())
				}
			}
		})
	}

	st := p.Stats()
	if st.Created != uint64(len(tests)) || st.ProtectedAtCreation != 4 || st.Failures != 0 {
		t.Errorf("stats %+v: want Created=%d ProtectedAtCreation=4 Failures=0", st, len(tests))
	}
}

func TestCgroupV1GetsOnlyAdj(t *testing.T) {
	f := startRuntime(t, t.TempDir(), nil, nil)
	p := newPlugin(t, Config{Policy: policy.Default(), CgroupV2: false})
	runPlugin(t, f, p)

	pd := pod("jupyter", nil)
	ctr := kubeletContainer("c1", pd.GetId(), "main")
	ctr.Linux.Resources.Unified = nil // kubelet sends no unified resources on v1
	resp, err := f.create(context.Background(), pd, ctr)
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	if w := describe(resp.GetAdjust()); w.oomGroup != "-" || w.adj != "900" {
		t.Errorf("adjustment %+v, want no oom.group and adj 900", w)
	}
}

func TestUpdateContainerHoldsOOMGroup(t *testing.T) {
	f := startRuntime(t, t.TempDir(), nil, nil)
	p := newPlugin(t, Config{Policy: policy.Default(), CgroupV2: true})
	runPlugin(t, f, p)

	// An in-place resize: kubelet resends the whole unified map with
	// memory.oom.group=1 and the new limit.
	resize := func() *api.LinuxResources {
		return &api.LinuxResources{
			Memory:  &api.LinuxMemory{Limit: api.Int64(int64(4 << 30))},
			Unified: map[string]string{OOMGroupKey: "1", "memory.high": "max"},
		}
	}

	target := pod("jupyter", nil)
	ctr := kubeletContainer("c1", target.GetId(), "main")
	resp, err := f.updateResources(context.Background(), target, ctr, resize())
	if err != nil {
		t.Fatalf("UpdateContainer: %v", err)
	}
	u := updateFor(resp, "c1")
	if u == nil {
		t.Fatalf("no update for the resized container: %v", resp)
	}
	res := u.GetLinux().GetResources()
	if got := res.GetUnified()[OOMGroupKey]; got != "0" {
		t.Errorf("memory.oom.group after resize = %q, want 0", got)
	}
	// The rest of the runtime's request must survive the plugin's change.
	if got := res.GetUnified()["memory.high"]; got != "max" {
		t.Errorf("memory.high = %q, want the requested max", got)
	}
	if got := res.GetMemory().GetLimit().GetValue(); got != 4<<30 {
		t.Errorf("memory limit = %d, want the requested %d", got, 4<<30)
	}

	other := pod("kube-system", nil)
	resp, err = f.updateResources(context.Background(), other, kubeletContainer("c2", other.GetId(), "dns"), resize())
	if err != nil {
		t.Fatalf("UpdateContainer (kube-system): %v", err)
	}
	if u := updateFor(resp, "c2"); u != nil {
		t.Errorf("kube-system container updated: %v", u)
	}
	if st := p.Stats(); st.Updated != 1 {
		t.Errorf("stats.Updated = %d, want 1", st.Updated)
	}
}

func updateFor(resp *api.UpdateContainerResponse, id string) *api.ContainerUpdate {
	for _, u := range resp.GetUpdate() {
		if u != nil && u.GetContainerId() == id {
			return u
		}
	}
	return nil
}

func TestSynchronizeFixesExistingContainers(t *testing.T) {
	target, system := pod("jupyter", nil), pod("kube-system", nil)
	running := kubeletContainer("c-running", target.GetId(), "notebook")
	running.State = api.ContainerState_CONTAINER_RUNNING
	stopped := kubeletContainer("c-stopped", target.GetId(), "init")
	stopped.State = api.ContainerState_CONTAINER_STOPPED
	dns := kubeletContainer("c-dns", system.GetId(), "coredns")
	dns.State = api.ContainerState_CONTAINER_RUNNING

	f := startRuntime(t, t.TempDir(), []*api.PodSandbox{target, system}, []*api.Container{running, stopped, dns})
	var got events
	p := newPlugin(t, Config{Policy: policy.Default(), CgroupV2: true, OnEvent: got.add})
	runPlugin(t, f, p)

	applied := f.appliedUpdates()
	if len(applied) != 1 {
		t.Fatalf("runtime applied %d updates at sync, want 1 (the running target): %v", len(applied), applied)
	}
	u := applied[0]
	if u.GetContainerId() != "c-running" || u.GetLinux().GetResources().GetUnified()[OOMGroupKey] != "0" || !u.GetIgnoreFailure() {
		t.Errorf("sync update %v: want c-running memory.oom.group=0 with IgnoreFailure", u)
	}
	st := p.Stats()
	if st.SyncFixed != 1 || st.SyncAdjLeft != 1 {
		t.Errorf("stats %+v: want SyncFixed=1 SyncAdjLeft=1 (adj 999 is the agent's to fix)", st)
	}
	if evs := got.all(); len(evs) != 1 || evs[0].Phase != PhaseSync || evs[0].AdjSet {
		t.Errorf("events %+v: want one sync event without adj", evs)
	}
}

// A bug in the plugin must cost one container its protection, not the pod
// its start: the handler's panic is recovered and creation goes on.
func TestPanicDoesNotBlockCreation(t *testing.T) {
	f := startRuntime(t, t.TempDir(), nil, nil)
	p := newPlugin(t, Config{Policy: policy.Default(), CgroupV2: true,
		OnEvent: func(Event) { panic("callback bug") }})
	runPlugin(t, f, p)

	pd := pod("jupyter", nil)
	if _, err := f.create(context.Background(), pd, kubeletContainer("c1", pd.GetId(), "main")); err != nil {
		t.Fatalf("CreateContainer failed after a plugin panic: %v", err)
	}
	if st := p.Stats(); st.Failures != 1 {
		t.Errorf("stats.Failures = %d, want 1", st.Failures)
	}
}

// When the plugin is gone, the runtime creates containers without it; the
// agent protects them after the fact.
func TestStoppedPluginDoesNotBlockCreation(t *testing.T) {
	f := startRuntime(t, t.TempDir(), nil, nil)
	p := newPlugin(t, Config{Policy: policy.Default(), CgroupV2: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, Connection{SocketPath: f.socket, Index: "10"}) }()
	f.waitRegistered(t, func() bool { return p.Stats().Syncs > 0 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	pd := pod("jupyter", nil)
	resp, err := f.create(context.Background(), pd, kubeletContainer("c1", pd.GetId(), "main"))
	if err != nil {
		t.Fatalf("CreateContainer failed with the plugin gone: %v", err)
	}
	if w := describe(resp.GetAdjust()); w.oomGroup != "-" || w.adj != "-" {
		t.Errorf("adjustment %+v from a stopped plugin", w)
	}
}

// The runtime restarts (containerd upgrade): the plugin must come back by
// itself and protect containers created afterwards.
func TestReconnectsAfterRuntimeRestart(t *testing.T) {
	dir := t.TempDir()
	f := startRuntime(t, dir, nil, nil)
	proxy := startCutter(t, filepath.Join(dir, "proxy.sock"), f.socket)
	p := newPlugin(t, Config{Policy: policy.Default(), CgroupV2: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, Connection{SocketPath: proxy.ln.Addr().String(), Index: "10"}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	f.waitRegistered(t, func() bool { return p.Stats().Syncs > 0 })

	f.nri.Stop()
	proxy.cut()
	f2 := startRuntime(t, dir, nil, nil)
	f2.waitRegistered(t, func() bool { return p.Stats().Syncs > 1 })

	pd := pod("jupyter", nil)
	resp, err := f2.create(context.Background(), pd, kubeletContainer("c1", pd.GetId(), "main"))
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	if w := describe(resp.GetAdjust()); w.oomGroup != "0" || w.adj != "900" {
		t.Errorf("after reconnect: adjustment %+v, want oom.group=0 adj=900", w)
	}
}

// otherPlugin sets memory.oom.group on every container, as a second
// resource-management plugin might.
type otherPlugin struct{ synced chan struct{} }

func (o *otherPlugin) Synchronize(context.Context, []*api.PodSandbox, []*api.Container) ([]*api.ContainerUpdate, error) {
	close(o.synced)
	return nil, nil
}

func (o *otherPlugin) CreateContainer(context.Context, *api.PodSandbox, *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	a := &api.ContainerAdjustment{}
	a.AddLinuxUnified(OOMGroupKey, "1")
	return a, nil, nil
}

// NRI lets one plugin own a unified key per container and fails the
// request when a second one sets it. podwarden cannot prevent that; the
// test pins the behaviour that docs/nri.md warns about.
func TestConflictingPluginFailsCreation(t *testing.T) {
	f := startRuntime(t, t.TempDir(), nil, nil)
	p := newPlugin(t, Config{Policy: policy.Default(), CgroupV2: true})
	runPlugin(t, f, p)

	o := &otherPlugin{synced: make(chan struct{})}
	s, err := stub.New(o, stub.WithPluginName("other"), stub.WithPluginIdx("20"), stub.WithSocketPath(f.socket))
	if err != nil {
		t.Fatalf("stub.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Run(ctx) }()
	select {
	case <-o.synced:
	case <-time.After(time.Minute):
		t.Fatal("other plugin did not synchronize")
	}
	f.nri.BlockPluginSync().Unblock()

	pd := pod("jupyter", nil)
	_, err = f.create(context.Background(), pd, kubeletContainer("c1", pd.GetId(), "main"))
	if err == nil || !strings.Contains(err.Error(), OOMGroupKey) {
		t.Fatalf("CreateContainer with two plugins setting %s: err %v, want a conflict", OOMGroupKey, err)
	}
	// A non-target is not touched by podwarden, so the other plugin wins
	// alone and creation succeeds.
	sys := pod("kube-system", nil)
	if _, err := f.create(context.Background(), sys, kubeletContainer("c2", sys.GetId(), "dns")); err != nil {
		t.Fatalf("CreateContainer for a non-target: %v", err)
	}
}

func TestNewRejectsInvalidPolicy(t *testing.T) {
	cfg := policy.Default()
	cfg.OOMGroup = "sometimes"
	if _, err := New(Config{Policy: cfg}); err == nil {
		t.Fatal("New accepted oomGroup \"sometimes\"")
	}
}

func TestRunRejectsBadIdentity(t *testing.T) {
	p := newPlugin(t, Config{Policy: policy.Default()})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range []Connection{
		{SocketPath: "/nonexistent", Index: "1"},
		{SocketPath: "/nonexistent", Index: "10", Name: "bad name"},
	} {
		if err := p.Run(ctx, c); err == nil {
			t.Errorf("Run(%+v) = nil, want an identity error", c)
		}
	}
}

// A stub that cannot be built fails the same way every time: Run must
// return instead of retrying forever.
func TestRunReturnsStubErrors(t *testing.T) {
	t.Setenv(api.PluginIdxEnvVar, "05")
	p := newPlugin(t, Config{Policy: policy.Default()})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := p.Run(ctx, Connection{SocketPath: filepath.Join(t.TempDir(), "none.sock"), Index: "10"})
	if err == nil || ctx.Err() != nil {
		t.Fatalf("Run with an index clashing with %s: err %v after ctx err %v, want an immediate error", api.PluginIdxEnvVar, err, ctx.Err())
	}
}
