package metricsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
)

// Options bound what one client can hold of the server.
type Options struct {
	// Addr is the listen address, e.g. :9808.
	Addr string
	// WebConfigFile is an exporter-toolkit web config (TLS, basic auth),
	// "" for plain HTTP.
	WebConfigFile string
	// ReadHeaderTimeout bounds the wait for a request's header, and the
	// TLS handshake.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing the response (a client that reads it
	// slowly is cut off).
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection with no new request.
	IdleTimeout time.Duration
	// MaxConns is the most open connections (docs above).
	MaxConns int
	// MaxConnsPerHost is the most of them from one source host (hostOf): one
	// host cannot hold every slot with requests it never finishes (those
	// are never cut before their deadlines), so a scrape from elsewhere
	// always finds one. 0 is MaxConns/4, at least 1.
	MaxConnsPerHost int
	// MaxHeaderBytes bounds a request's header.
	MaxHeaderBytes int
}

// Defaults a Prometheus scrape, a kubelet probe and `podwarden status`
// never come near: a scrape sends a header of a few hundred bytes and
// reads a page of about 10 KiB; Prometheus scrapes every 15 s or more, so
// a 10 s idle timeout costs it a TCP handshake per scrape at most.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 10 * time.Second
	DefaultWriteTimeout      = 15 * time.Second
	DefaultIdleTimeout       = 10 * time.Second
	DefaultMaxConns          = 64
	DefaultMaxHeaderBytes    = 8 << 10

	// MaxMaxConns keeps the eviction scan (linear in open connections)
	// and the memory the bound allows small.
	MaxMaxConns = 4096
)

// DefaultOptions returns Options with the defaults above for addr.
func DefaultOptions(addr string) Options {
	return Options{
		Addr: addr, ReadHeaderTimeout: DefaultReadHeaderTimeout, ReadTimeout: DefaultReadTimeout,
		WriteTimeout: DefaultWriteTimeout, IdleTimeout: DefaultIdleTimeout,
		MaxConns: DefaultMaxConns, MaxHeaderBytes: DefaultMaxHeaderBytes,
	}
}

// Validate refuses options that would leave a phase unbounded.
func (o Options) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"read header timeout", o.ReadHeaderTimeout}, {"read timeout", o.ReadTimeout},
		{"write timeout", o.WriteTimeout}, {"idle timeout", o.IdleTimeout},
	} {
		if d.v <= 0 || d.v > 10*time.Minute {
			return fmt.Errorf("%s %s: want more than 0 and at most 10m", d.name, d.v)
		}
	}
	if o.MaxConns < 1 || o.MaxConns > MaxMaxConns {
		return fmt.Errorf("max connections %d: want 1..%d", o.MaxConns, MaxMaxConns)
	}
	if o.MaxConnsPerHost < 0 || o.MaxConnsPerHost > o.MaxConns {
		return fmt.Errorf("max connections per host %d: want 0..%d (max connections; 0: a quarter of it)", o.MaxConnsPerHost, o.MaxConns)
	}
	if o.MaxHeaderBytes < 1<<10 || o.MaxHeaderBytes > 1<<20 {
		return fmt.Errorf("max header bytes %d: want 1 KiB..1 MiB", o.MaxHeaderBytes)
	}
	return nil
}

// Server is a running metrics server.
type Server struct {
	srv   *http.Server
	conns *connLimiter
	addr  net.Addr
	stop  func() bool
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.addr }

// Close closes the listener and every connection.
func (s *Server) Close() error {
	s.stop()
	return s.srv.Close()
}

// Stats are the connection bound's counts.
type Stats struct {
	Open, Idle, Evicted, Refused int
}

// Stats returns the open (and of them idle) connections and how many were
// closed by the bound so far.
func (s *Server) Stats() Stats { return s.conns.stats() }

// Serve listens on o.Addr and serves h until ctx ends or Close.
func Serve(ctx context.Context, o Options, h http.Handler, log *slog.Logger) (*Server, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", o.Addr, err)
	}
	perHost := o.MaxConnsPerHost
	if perHost == 0 {
		perHost = max(1, o.MaxConns/4)
	}
	cl := newConnLimiter(o.MaxConns, perHost)
	// HTTP/1.1 only, also over TLS: one HTTP/2 connection carries up to
	// 250 concurrent requests, each a goroutine and a response buffer the
	// connection bound does not see. A scrape needs one.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	srv := &http.Server{
		Protocols:         &protocols,
		Handler:           h,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		WriteTimeout:      o.WriteTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		ConnState:         cl.connState,
		// The server's own messages (TLS handshake errors from scanners)
		// would otherwise go to the standard logger, unstructured.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	webConfig := o.WebConfigFile
	flags := &web.FlagConfig{WebListenAddresses: &[]string{o.Addr}, WebConfigFile: &webConfig}
	go func() {
		if err := web.Serve(ln, srv, flags, log); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	return &Server{srv: srv, conns: cl, addr: ln.Addr(), stop: stop}, nil
}
