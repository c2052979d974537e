package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// DefaultEndpoints returns the sockets Dial tries, in order, when it gets no
// endpoint: containerd first because it runs most clusters (EKS, GKE, AKS),
// then CRI-O (OpenShift), then cri-dockerd. It is a function so no caller can
// change the list for everyone.
func DefaultEndpoints() []string {
	return []string{
		"unix:///run/containerd/containerd.sock",
		"unix:///var/run/crio/crio.sock",
		"unix:///var/run/cri-dockerd.sock",
	}
}

const (
	defaultTimeout = 5 * time.Second
	// kubelet raises gRPC's 4 MiB receive limit to 16 MiB because
	// ListContainers on a busy node exceeds it; so do we.
	maxRecvMsgSize = 16 << 20
	// eventBuffer absorbs a burst of events (a node starting many pods)
	// while the agent is busy, so the runtime's stream is not throttled.
	eventBuffer = 256
)

// Option configures Dial.
type Option func(*options) error

type options struct {
	timeout    time.Duration
	logger     *slog.Logger
	candidates []string
}

// WithCandidates replaces the endpoints tried when Dial gets endpoint "",
// e.g. to add k3s's /run/k3s/containerd/containerd.sock.
func WithCandidates(endpoints ...string) Option {
	return func(o *options) error {
		if len(endpoints) == 0 {
			return errors.New("candidates must not be empty")
		}
		o.candidates = endpoints
		return nil
	}
}

// WithTimeout bounds connecting to each endpoint and every unary call that
// has no earlier deadline in its ctx. A hung runtime then costs the agent a
// missed pass, not a stuck loop. The default is 5s.
func WithTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return errors.New("timeout must be greater than zero")
		}
		o.timeout = d
		return nil
	}
}

// WithLogger sets where the event stream reports how it ended. The default
// is slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("logger must not be nil")
		}
		o.logger = l
		return nil
	}
}

// Client is a CRI runtime service client on one unix socket.
type Client struct {
	conn     *grpc.ClientConn
	rt       runtimeapi.RuntimeServiceClient
	endpoint string
	name     string
	version  string
	timeout  time.Duration
	logger   *slog.Logger
}

// Dial connects to the runtime at endpoint ("unix:///path" or a bare
// "/path") and checks that it answers Version. With endpoint "" it tries
// DefaultEndpoints (or WithCandidates) in order and returns the first that answers; if none
// does, the error names every endpoint tried and why it failed.
func Dial(ctx context.Context, endpoint string, opts ...Option) (*Client, error) {
	o := options{timeout: defaultTimeout, logger: slog.Default(), candidates: DefaultEndpoints()}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("configuring CRI client: %w", err)
		}
	}
	if endpoint != "" {
		c, err := dialOne(ctx, endpoint, o)
		if err != nil {
			return nil, fmt.Errorf("connecting to container runtime at %s: %w", endpoint, err)
		}
		return c, nil
	}
	var errs []error
	for _, ep := range o.candidates {
		c, err := dialOne(ctx, ep, o)
		if err == nil {
			return c, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", ep, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, &dialError{errs: errs}
}

// dialError keeps every endpoint's failure on one line, because the agent
// logs it as a single slog attribute.
type dialError struct{ errs []error }

func (e *dialError) Error() string {
	msgs := make([]string, len(e.errs))
	for i, err := range e.errs {
		msgs[i] = err.Error()
	}
	return "no container runtime found (set --runtime-endpoint to choose one): " + strings.Join(msgs, "; ")
}

func (e *dialError) Unwrap() []error { return e.errs }

// socketPath accepts "unix:///abs", "unix:rel" and a bare path. url.Parse
// is not used because it reads "unix://run/x.sock" as host "run".
func socketPath(endpoint string) (string, error) {
	switch {
	case strings.HasPrefix(endpoint, "unix://"):
		endpoint = strings.TrimPrefix(endpoint, "unix://")
	case strings.HasPrefix(endpoint, "unix:"):
		endpoint = strings.TrimPrefix(endpoint, "unix:")
	case strings.Contains(endpoint, "://"):
		return "", fmt.Errorf("unsupported endpoint %q: only unix sockets are supported", endpoint)
	}
	if endpoint == "" {
		return "", errors.New("empty socket path")
	}
	return endpoint, nil
}

func dialOne(ctx context.Context, endpoint string, o options) (*Client, error) {
	path, err := socketPath(endpoint)
	if err != nil {
		return nil, err
	}
	// Checking the file first gives "no such file or directory" instead of
	// gRPC's generic "Unavailable" for the common case of a missing runtime.
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return nil, fmt.Errorf("%s is not a unix socket", path)
	}
	target := "unix:" + path
	if strings.HasPrefix(path, "/") {
		target = "unix://" + path
	}
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMsgSize)),
	)
	if err != nil {
		return nil, fmt.Errorf("creating gRPC client: %w", err)
	}
	c := &Client{
		conn:     conn,
		rt:       runtimeapi.NewRuntimeServiceClient(conn),
		endpoint: target,
		timeout:  o.timeout,
		logger:   o.logger,
	}
	vctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	// Unary calls fail fast (no WaitForReady): a refused connection returns
	// at once, a socket nobody serves ends at the timeout.
	v, err := c.rt.Version(vctx, &runtimeapi.VersionRequest{Version: "v1"})
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("asking runtime for its version: %w", err)
	}
	c.name, c.version = v.GetRuntimeName(), v.GetRuntimeVersion()
	return c, nil
}

// Endpoint is the gRPC target the client is connected to.
func (c *Client) Endpoint() string { return c.endpoint }

// RuntimeName is the name the runtime gave in Version ("containerd", "cri-o").
func (c *Client) RuntimeName() string { return c.name }

// RuntimeVersion is the runtime's own version from Version.
func (c *Client) RuntimeVersion() string { return c.version }

// Close closes the connection; open event streams end and their channels
// close.
func (c *Client) Close() error {
	if err := c.conn.Close(); err != nil {
		return fmt.Errorf("closing CRI connection to %s: %w", c.endpoint, err)
	}
	return nil
}

func (c *Client) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// ListPods lists pod sandboxes whose labels include every pair of
// labelSelector (nil or empty selects all).
func (c *Client) ListPods(ctx context.Context, labelSelector map[string]string) ([]Pod, error) {
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	req := &runtimeapi.ListPodSandboxRequest{}
	if len(labelSelector) > 0 {
		req.Filter = &runtimeapi.PodSandboxFilter{LabelSelector: labelSelector}
	}
	resp, err := c.rt.ListPodSandbox(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("listing pod sandboxes: %w", err)
	}
	pods := make([]Pod, 0, len(resp.GetItems()))
	for _, s := range resp.GetItems() {
		md := s.GetMetadata()
		pods = append(pods, Pod{
			ID:          s.GetId(),
			UID:         md.GetUid(),
			Name:        md.GetName(),
			Namespace:   md.GetNamespace(),
			Labels:      s.GetLabels(),
			Annotations: s.GetAnnotations(),
			Ready:       s.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY,
			CreatedAt:   nanos(s.GetCreatedAt()),
		})
	}
	return pods, nil
}

// ListContainers lists the containers of one sandbox, or of all
// sandboxes when podID is "".
func (c *Client) ListContainers(ctx context.Context, podID string) ([]Container, error) {
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	req := &runtimeapi.ListContainersRequest{}
	if podID != "" {
		req.Filter = &runtimeapi.ContainerFilter{PodSandboxId: podID}
	}
	resp, err := c.rt.ListContainers(ctx, req)
	if err != nil {
		if podID != "" {
			return nil, fmt.Errorf("listing containers of pod sandbox %s: %w", podID, err)
		}
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	out := make([]Container, 0, len(resp.GetContainers()))
	for _, ct := range resp.GetContainers() {
		out = append(out, Container{
			ID:          ct.GetId(),
			PodID:       ct.GetPodSandboxId(),
			Name:        ct.GetMetadata().GetName(),
			State:       stateString(ct.GetState()),
			Labels:      ct.GetLabels(),
			Annotations: ct.GetAnnotations(),
			CreatedAt:   nanos(ct.GetCreatedAt()),
		})
	}
	return out, nil
}

// Events follows the runtime's container events until ctx ends or the
// stream ends; the channel is closed then. An ended stream is normal
// (CRI-O without pod events, runtime restart): re-list and call again
// from the re-list timer, not in a tight loop, since CRI-O ends the
// stream at once every time. The stream is opened here; how it ends is
// logged, not returned, because it ends in the background: EOF or
// Unimplemented at Info (runtime does not stream), cancellation at Debug,
// anything else (socket gone, runtime restarted) at Error.
func (c *Client) Events(ctx context.Context) (<-chan Event, error) {
	stream, err := c.rt.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		return nil, fmt.Errorf("opening container event stream on %s: %w", c.endpoint, err)
	}
	ch := make(chan Event, eventBuffer)
	go func() {
		defer close(ch)
		n := 0
		for {
			resp, err := stream.Recv()
			if err != nil {
				c.logStreamEnd(ctx, err, n)
				return
			}
			n++
			select {
			case ch <- toEvent(resp):
			case <-ctx.Done():
				c.logStreamEnd(ctx, ctx.Err(), n)
				return
			}
		}
	}()
	return ch, nil
}

func (c *Client) logStreamEnd(ctx context.Context, err error, n int) {
	attrs := []any{"endpoint", c.endpoint, "events", n}
	switch {
	case ctx.Err() != nil || status.Code(err) == codes.Canceled:
		c.logger.Debug("container event stream closed", attrs...)
	case errors.Is(err, io.EOF):
		c.logger.Info("runtime ended the container event stream; relying on periodic re-list (CRI-O needs enable_pod_events=true to stream)", attrs...)
	case status.Code(err) == codes.Unimplemented || strings.Contains(err.Error(), "not implemented"):
		// Some CRI shims answer with a plain "GetContainerEvents not
		// implemented" error (code Unknown) instead of Unimplemented.
		c.logger.Info("runtime does not stream container events; relying on periodic re-list", append(attrs, "err", err)...)
	default:
		c.logger.Error("container event stream failed", append(attrs, "err", err)...)
	}
}

func toEvent(r *runtimeapi.ContainerEventResponse) Event {
	ev := Event{
		Type:        EventType(r.GetContainerEventType()),
		ContainerID: r.GetContainerId(),
		PodID:       r.GetPodSandboxStatus().GetId(),
		PodUID:      r.GetPodSandboxStatus().GetMetadata().GetUid(),
		Time:        nanos(r.GetCreatedAt()),
	}
	if ev.Type < EventCreated || ev.Type > EventDeleted {
		// A newer runtime may add event types; treating them as "something
		// changed" makes the agent re-check the container, which is safe.
		ev.Type = EventStarted
	}
	return ev
}

func stateString(s runtimeapi.ContainerState) string {
	switch s {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		return StateCreated
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return StateRunning
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return StateExited
	}
	return StateUnknown
}

// nanos converts CRI's Unix-nanosecond timestamps; 0 means "not set" and
// stays the zero time so IsZero works.
func nanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
