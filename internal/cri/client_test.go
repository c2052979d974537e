package cri

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-client/pkg/fake"

	"podwarden/internal/syncbuf"
)

// These are integration tests of the real gRPC client against
// k8s.io/cri-client/pkg/fake, a fake runtime served over a real unix socket:
// the real runtimes run only inside the node test's guest (internal/nodetest),
// so the fake stands in for one here. What it does not do (event streaming)
// is covered by streamingRuntime below.

func testLogger() (*slog.Logger, *syncbuf.Buffer) {
	buf := &syncbuf.Buffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// startFake serves the cri-client fake on a socket in a temp dir.
func startFake(t *testing.T) (*fake.RemoteRuntime, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "cri.sock")
	f := fake.NewFakeRemoteRuntime()
	if err := f.Start("unix://" + sock); err != nil {
		t.Fatalf("starting fake runtime: %v", err)
	}
	t.Cleanup(f.Stop)
	return f, sock
}

// seed creates two pods with one and two containers through the fake's
// service. Pod configs need Metadata; container configs need Metadata and
// Image (the fake dereferences Image and would crash the test binary).
func seed(t *testing.T, f *fake.RemoteRuntime) (podA, podB string) {
	t.Helper()
	ctx := context.Background()
	rs := f.RuntimeService
	mkPod := func(name, uid string, labels map[string]string) string {
		id, err := rs.RunPodSandbox(ctx, &runtimeapi.PodSandboxConfig{
			Metadata:    &runtimeapi.PodSandboxMetadata{Name: name, Uid: uid, Namespace: "hub"},
			Labels:      labels,
			Annotations: map[string]string{"podwarden.io/oom-kill": "single"},
		}, "")
		if err != nil {
			t.Fatalf("RunPodSandbox %s: %v", name, err)
		}
		return id
	}
	podA = mkPod("jupyter-alice", "uid-a", map[string]string{"app": "latch-pods", "user": "alice"})
	podB = mkPod("other", "uid-b", map[string]string{"app": "other"})
	mkCtr := func(pod, name string, start bool) {
		id, err := rs.CreateContainer(ctx, pod, &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: name},
			Image:    &runtimeapi.ImageSpec{Image: "busybox"},
			Labels:   map[string]string{"io.kubernetes.container.name": name},
		}, nil)
		if err != nil {
			t.Fatalf("CreateContainer %s: %v", name, err)
		}
		if start {
			if err := rs.StartContainer(ctx, id); err != nil {
				t.Fatalf("StartContainer %s: %v", name, err)
			}
		}
	}
	mkCtr(podA, "notebook", true)
	mkCtr(podA, "sidecar", false)
	mkCtr(podB, "app", true)
	return podA, podB
}

func TestClientAgainstFake(t *testing.T) {
	f, sock := startFake(t)
	podA, podB := seed(t, f)
	ctx := context.Background()

	// A bare path, as an operator may pass it.
	c, err := Dial(ctx, sock)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	if c.RuntimeName() != "fakeRuntime" || c.Endpoint() != "unix://"+sock {
		t.Errorf("RuntimeName, Endpoint = %q, %q", c.RuntimeName(), c.Endpoint())
	}

	t.Run("ListPods", func(t *testing.T) {
		all, err := c.ListPods(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 2 {
			t.Fatalf("got %d pods, want 2", len(all))
		}
		sel, err := c.ListPods(ctx, map[string]string{"app": "latch-pods"})
		if err != nil {
			t.Fatal(err)
		}
		if len(sel) != 1 {
			t.Fatalf("selector: got %d pods, want 1", len(sel))
		}
		p := sel[0]
		if p.ID != podA || p.UID != "uid-a" || p.Name != "jupyter-alice" || p.Namespace != "hub" || !p.Ready {
			t.Errorf("pod = %+v", p)
		}
		if p.Labels["user"] != "alice" || p.Annotations["podwarden.io/oom-kill"] != "single" {
			t.Errorf("labels/annotations = %v / %v", p.Labels, p.Annotations)
		}
		if p.CreatedAt.IsZero() || time.Since(p.CreatedAt) > time.Minute {
			t.Errorf("CreatedAt = %v", p.CreatedAt)
		}
	})

	t.Run("ListContainers", func(t *testing.T) {
		all, err := c.ListContainers(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 3 {
			t.Fatalf("got %d containers, want 3", len(all))
		}
		inA, err := c.ListContainers(ctx, podA)
		if err != nil {
			t.Fatal(err)
		}
		states := map[string]string{}
		for _, ct := range inA {
			if ct.PodID != podA {
				t.Errorf("container %s has PodID %q, want %q", ct.Name, ct.PodID, podA)
			}
			states[ct.Name] = ct.State
		}
		want := map[string]string{"notebook": StateRunning, "sidecar": StateCreated}
		if len(states) != 2 || states["notebook"] != want["notebook"] || states["sidecar"] != want["sidecar"] {
			t.Errorf("states = %v, want %v", states, want)
		}
		inB, err := c.ListContainers(ctx, podB)
		if err != nil || len(inB) != 1 || inB[0].Name != "app" {
			t.Errorf("pod B containers = %+v, %v", inB, err)
		}
	})

	t.Run("ErrorsNameTheCall", func(t *testing.T) {
		f.RuntimeService.InjectError("ListPodSandbox", errors.New("boom"))
		_, err := c.ListPods(ctx, nil)
		if err == nil || !strings.Contains(err.Error(), "listing pod sandboxes") || !strings.Contains(err.Error(), "boom") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestEventsFakeEndsAtOnce(t *testing.T) {
	// The fake's GetContainerEvents returns at once, like CRI-O without
	// enable_pod_events: the channel must close, and the log say why.
	_, sock := startFake(t)
	log, buf := testLogger()
	c, err := Dial(context.Background(), "unix://"+sock, WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ch, err := c.Events(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ev, ok := <-ch:
		if ok {
			t.Fatalf("unexpected event %+v", ev)
		}
	case <-time.After(time.Minute):
		t.Fatal("channel did not close after the stream ended")
	}
	if !strings.Contains(buf.String(), "runtime ended the container event stream") {
		t.Errorf("log = %q", buf.String())
	}
}

// streamingRuntime is the cri-client fake with a working
// GetContainerEvents, as containerd 1.7+ has: it sends what the test puts
// on events.
type streamingRuntime struct {
	*fake.RemoteRuntime
	events chan *runtimeapi.ContainerEventResponse
}

func (s *streamingRuntime) GetContainerEvents(_ *runtimeapi.GetEventsRequest, stream runtimeapi.RuntimeService_GetContainerEventsServer) error {
	for {
		select {
		case ev := <-s.events:
			if err := stream.Send(ev); err != nil {
				return err
			}
		case <-stream.Context().Done():
			return nil
		}
	}
}

func startStreaming(t *testing.T) (*streamingRuntime, *grpc.Server, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	rt := &streamingRuntime{RemoteRuntime: fake.NewFakeRemoteRuntime(), events: make(chan *runtimeapi.ContainerEventResponse)}
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, rt)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return rt, srv, sock
}

func TestEventsStreamAndSocketGoingAway(t *testing.T) {
	rt, srv, sock := startStreaming(t)
	log, buf := testLogger()
	ctx := context.Background()
	c, err := Dial(ctx, sock, WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ch, err := c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	sent := []*runtimeapi.ContainerEventResponse{
		{ContainerId: "c1", ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, CreatedAt: at.UnixNano(),
			PodSandboxStatus: &runtimeapi.PodSandboxStatus{Id: "p1", Metadata: &runtimeapi.PodSandboxMetadata{Uid: "uid-1"}}},
		{ContainerId: "c1", ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT, CreatedAt: at.UnixNano()},
		{ContainerId: "c1", ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT},
		{ContainerId: "c1", ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT},
		{ContainerId: "c2", ContainerEventType: runtimeapi.ContainerEventType(42)},
	}
	want := []Event{
		{Type: EventCreated, ContainerID: "c1", PodID: "p1", PodUID: "uid-1", Time: at},
		{Type: EventStarted, ContainerID: "c1", Time: at},
		{Type: EventStopped, ContainerID: "c1"},
		{Type: EventDeleted, ContainerID: "c1"},
		{Type: EventStarted, ContainerID: "c2"}, // unknown types mean "re-check"
	}
	for i, ev := range sent {
		select {
		case rt.events <- ev:
		case <-time.After(time.Minute):
			t.Fatalf("server did not take event %d", i)
		}
		select {
		case got := <-ch:
			if got.Type != want[i].Type || got.ContainerID != want[i].ContainerID || got.PodID != want[i].PodID ||
				got.PodUID != want[i].PodUID || !got.Time.Equal(want[i].Time) {
				t.Errorf("event %d = %+v, want %+v", i, got, want[i])
			}
		case <-time.After(time.Minute):
			t.Fatalf("event %d not received", i)
		}
	}

	// The runtime goes away mid-stream: the channel closes, the error is
	// logged, and Dial to the dead socket fails fast.
	srv.Stop()
	select {
	case ev, ok := <-ch:
		if ok {
			t.Fatalf("unexpected event %+v", ev)
		}
	case <-time.After(time.Minute):
		t.Fatal("channel did not close when the runtime went away")
	}
	if !strings.Contains(buf.String(), "container event stream failed") {
		t.Errorf("log = %q", buf.String())
	}
}

func TestEventsCancel(t *testing.T) {
	_, _, sock := startStreaming(t)
	log, buf := testLogger()
	c, err := Dial(context.Background(), sock, WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("unexpected event")
		}
	case <-time.After(time.Minute):
		t.Fatal("channel did not close on cancel")
	}
	if strings.Contains(buf.String(), "level=ERROR") {
		t.Errorf("cancel logged an error: %q", buf.String())
	}
}

func TestRuntimeRestart(t *testing.T) {
	// containerd restarts on upgrades; the same Client must work again
	// once the socket is back, without a new Dial.
	f, sock := startFake(t)
	seed(t, f)
	c, err := Dial(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f.Stop()
	if _, err := c.ListPods(context.Background(), nil); err == nil {
		t.Fatal("ListPods on a stopped runtime succeeded")
	}
	f2 := fake.NewFakeRemoteRuntime()
	if err := f2.Start("unix://" + sock); err != nil {
		t.Fatal(err)
	}
	defer f2.Stop()
	seed(t, f2)
	deadline := time.Now().Add(10 * time.Second)
	for {
		pods, err := c.ListPods(context.Background(), nil)
		if err == nil && len(pods) == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("client did not reconnect: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDialFailures(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.sock")
	plain := filepath.Join(dir, "plain.file")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A listener that never accepts: the kernel completes the connect,
	// but no gRPC server ever answers. Dial must give up at the timeout.
	silent := filepath.Join(dir, "silent.sock")
	l, err := net.Listen("unix", silent)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	tests := map[string]struct {
		endpoint string
		opts     []Option
		want     []string
		notExist bool
	}{
		"missing socket": {endpoint: "unix://" + missing, want: []string{missing, "no such file"}, notExist: true},
		"bare path":      {endpoint: missing, want: []string{missing}, notExist: true},
		"not a socket":   {endpoint: plain, want: []string{plain, "not a unix socket"}},
		"tcp":            {endpoint: "tcp://127.0.0.1:1", want: []string{"only unix sockets"}},
		"nobody answers": {endpoint: silent, opts: []Option{WithTimeout(300 * time.Millisecond)}, want: []string{silent, "version"}},
		"every candidate listed": {
			opts:     []Option{WithCandidates("unix://"+missing, plain)},
			want:     []string{"no container runtime found", missing, plain},
			notExist: true,
		},
		"bad option": {endpoint: missing, opts: []Option{WithTimeout(0)}, want: []string{"timeout must be greater than zero"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			c, err := Dial(context.Background(), tc.endpoint, tc.opts...)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			// The bound is 300ms; a hang is the defect, a busy machine is not.
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("Dial took %v", d)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if got := errors.Is(err, fs.ErrNotExist); got != tc.notExist {
				t.Errorf("errors.Is(err, fs.ErrNotExist) = %v, want %v", got, tc.notExist)
			}
		})
	}
}

func TestDialTriesCandidatesInOrder(t *testing.T) {
	_, sock := startFake(t)
	missing := filepath.Join(t.TempDir(), "containerd.sock")
	c, err := Dial(context.Background(), "", WithCandidates("unix://"+missing, "unix://"+sock))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	if c.Endpoint() != "unix://"+sock {
		t.Errorf("connected to %s, want the second candidate", c.Endpoint())
	}
}

func TestDialCanceled(t *testing.T) {
	_, sock := startFake(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if c, err := Dial(ctx, sock); err == nil {
		c.Close()
		t.Fatal("Dial with a canceled ctx succeeded")
	}
}

func TestDefaultEndpoints(t *testing.T) {
	eps := DefaultEndpoints()
	want := []string{"unix:///run/containerd/containerd.sock", "unix:///var/run/crio/crio.sock", "unix:///var/run/cri-dockerd.sock"}
	if !slices.Equal(eps, want) {
		t.Errorf("DefaultEndpoints() = %v", eps)
	}
	eps[0] = "changed"
	if DefaultEndpoints()[0] == "changed" {
		t.Error("DefaultEndpoints shares its slice")
	}
}
