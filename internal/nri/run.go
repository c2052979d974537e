package nri

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/containerd/nri/pkg/api"
	nrilog "github.com/containerd/nri/pkg/log"
	"github.com/containerd/nri/pkg/stub"
)

// Connection says where and under which identity the plugin registers.
type Connection struct {
	// SocketPath is the runtime's NRI socket; "" means
	// /var/run/nri/nri.sock.
	SocketPath string
	// Name is the plugin name the runtime logs; "" means "podwarden".
	Name string
	// Index orders the plugin among others ("00".."99", lower runs
	// first). "" takes it from NRI_PLUGIN_IDX, which a runtime sets when
	// it launches the plugin itself. Run needs one or the other: the stub
	// would otherwise parse it from the executable's name and fail.
	Index string
	// Once returns after the first session instead of reconnecting. Use it
	// when the runtime launched the plugin and passed the connection in
	// NRI_PLUGIN_SOCKET: that connection cannot be re-dialled.
	Once bool
	// MaxBackoff caps the wait between reconnects; 0 means 30s.
	MaxBackoff time.Duration
}

const (
	defaultName       = "podwarden"
	defaultMaxBackoff = 30 * time.Second
	minBackoff        = 500 * time.Millisecond
	// stableAfter is how long a session must last for the backoff to
	// start again from minBackoff.
	stableAfter = time.Minute
)

// Run connects p to the runtime and serves it until ctx ends, returning
// nil then. A runtime restart closes the connection; Run dials again with
// backoff, because a plugin that exits instead leaves every container
// created before its pod restarts unprotected. Errors that retrying
// cannot fix (a bad name or index, a clash with NRI_PLUGIN_IDX) are
// returned at once.
func (p *Plugin) Run(ctx context.Context, c Connection) error {
	if c.Name == "" {
		c.Name = defaultName
	}
	if c.SocketPath == "" {
		c.SocketPath = api.DefaultSocketPath
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = defaultMaxBackoff
	}
	if err := api.CheckPluginName(c.Name); err != nil {
		return fmt.Errorf("plugin name: %w", err)
	}
	if c.Index != "" {
		if err := api.CheckPluginIndex(c.Index); err != nil {
			return fmt.Errorf("plugin index: %w", err)
		}
	}
	backoff := minBackoff
	for {
		s, err := p.newStub(c)
		if err != nil {
			return err
		}
		start := time.Now()
		err = serve(ctx, s, c.SocketPath)
		if ctx.Err() != nil {
			return nil
		}
		if c.Once {
			return err
		}
		if time.Since(start) > stableAfter {
			backoff = minBackoff
		}
		p.log.WarnContext(ctx, "nri: disconnected from the runtime; reconnecting (is NRI enabled in the runtime?)",
			"socket", c.SocketPath, "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, c.MaxBackoff)
	}
}

// newStub makes a fresh stub for each connection, so nothing carries over
// from the last runtime instance. Its errors are configuration errors that
// no retry fixes.
func (p *Plugin) newStub(c Connection) (stub.Stub, error) {
	opts := []stub.Option{
		stub.WithPluginName(c.Name),
		stub.WithSocketPath(c.SocketPath),
		stub.WithLogger(stubLogger{p.log}),
		// Say it explicitly, although it is NRI's default: if the plugin
		// times out or dies, the runtime creates the container without
		// it. The agent repairs such containers after the fact; a failed
		// pod start cannot be repaired.
		stub.WithFailurePolicy(&api.FailurePolicy{FailRequest: false}),
	}
	if c.Index != "" {
		opts = append(opts, stub.WithPluginIdx(c.Index))
	}
	s, err := stub.New(p, opts...)
	if err != nil {
		return nil, fmt.Errorf("creating NRI stub: %w", err)
	}
	return s, nil
}

// serve runs one connection until the runtime closes it or ctx ends.
func serve(ctx context.Context, s stub.Stub, socket string) error {
	if err := s.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("serving NRI on %s: %w", socket, err)
	}
	return nil
}

// stubLogger sends the stub's messages to slog. Its info lines (created,
// registering, configuring, ...) go to debug: the plugin logs the
// connection itself.
type stubLogger struct{ l *slog.Logger }

var _ nrilog.Logger = stubLogger{}

func (s stubLogger) Debugf(ctx context.Context, format string, args ...any) {
	s.l.DebugContext(ctx, "nri stub: "+fmt.Sprintf(format, args...))
}

func (s stubLogger) Infof(ctx context.Context, format string, args ...any) {
	s.l.DebugContext(ctx, "nri stub: "+fmt.Sprintf(format, args...))
}

func (s stubLogger) Warnf(ctx context.Context, format string, args ...any) {
	s.l.WarnContext(ctx, "nri stub: "+fmt.Sprintf(format, args...))
}

func (s stubLogger) Errorf(ctx context.Context, format string, args ...any) {
	s.l.ErrorContext(ctx, "nri stub: "+fmt.Sprintf(format, args...))
}
