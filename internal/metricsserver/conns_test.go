package metricsserver

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// testServer serves /ok, and /block which says it has started on
// blocked and waits for release, on real loopback sockets.
func testServer(t *testing.T, o Options) (srv *Server, blocked, release chan struct{}) {
	t.Helper()
	blocked, release = make(chan struct{}, 16), make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/block", func(w http.ResponseWriter, r *http.Request) {
		blocked <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, "released")
	})
	srv, err := Serve(t.Context(), o, mux, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, blocked, release
}

// testOptions bounds connections at maxConns, all of which one host (the
// tests' 127.0.0.1) may hold.
func testOptions(maxConns int) Options {
	o := DefaultOptions("127.0.0.1:0")
	o.MaxConns, o.MaxConnsPerHost = maxConns, maxConns
	return o
}

// conn is one raw keep-alive client connection.
type conn struct {
	t  *testing.T
	c  net.Conn
	rd *bufio.Reader
}

func dial(t *testing.T, srv *Server) *conn {
	t.Helper()
	return dialFrom(t, srv, "127.0.0.1")
}

// dialFrom connects from source address ip (any of 127.0.0.0/8 reaches
// the loopback listener): another host, as far as the server can tell.
func dialFrom(t *testing.T, srv *Server, ip string) *conn {
	t.Helper()
	d := net.Dialer{Timeout: 30 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := d.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &conn{t: t, c: c, rd: bufio.NewReader(c)}
}

func (c *conn) send(path string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, "GET "+path+" HTTP/1.1\r\nHost: agent\r\n\r\n"); err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
}

// answer reads one response, or returns the error (io.EOF: closed).
func (c *conn) answer() (*http.Response, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(c.rd, nil)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

func (c *conn) get(path string) int {
	c.t.Helper()
	c.send(path)
	resp, err := c.answer()
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode
}

// closed waits (generously: a busy machine) for the server to close c.
func (c *conn) closed() bool {
	_ = c.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err := c.rd.ReadByte()
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

func waitStats(t *testing.T, srv *Server, ok func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := srv.Stats()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("server stats %+v never reached the expected state", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Past the bound, the connection idle longest makes room for the new one.
func TestBoundEvictsOldestIdle(t *testing.T) {
	srv, _, _ := testServer(t, testOptions(2))
	a, b := dial(t, srv), dial(t, srv)
	if code := a.get("/ok"); code != http.StatusOK {
		t.Fatalf("a: %d", code)
	}
	waitStats(t, srv, func(s Stats) bool { return s.Idle == 1 })
	if code := b.get("/ok"); code != http.StatusOK {
		t.Fatalf("b: %d", code)
	}
	waitStats(t, srv, func(s Stats) bool { return s.Idle == 2 })
	c := dial(t, srv)
	if code := c.get("/ok"); code != http.StatusOK {
		t.Fatalf("new connection past the bound: %d, want 200", code)
	}
	if !a.closed() {
		t.Error("the oldest idle connection was not closed")
	}
	if code := b.get("/ok"); code != http.StatusOK {
		t.Errorf("the younger idle connection: %d, want it kept", code)
	}
	if st := srv.Stats(); st.Evicted != 1 || st.Refused != 0 || st.Open > 2 {
		t.Errorf("stats %+v, want 1 evicted, 0 refused, at most 2 open", st)
	}
}

// With no idle connection, the one that has sent nothing for longest
// makes room; a request being served is not touched.
func TestBoundEvictsSilentBeforeBusy(t *testing.T) {
	srv, blocked, release := testServer(t, testOptions(2))
	defer close(release)
	silent := dial(t, srv)
	waitStats(t, srv, func(s Stats) bool { return s.Open == 1 })
	busy := dial(t, srv)
	busy.send("/block")
	<-blocked
	if code := dial(t, srv).get("/ok"); code != http.StatusOK {
		t.Fatalf("new connection past the bound: %d, want 200", code)
	}
	if !silent.closed() {
		t.Error("the connection that never spoke was not closed")
	}
	if st := srv.Stats(); st.Evicted != 1 || st.Refused != 0 {
		t.Errorf("stats %+v, want 1 evicted", st)
	}
	release <- struct{}{}
	if resp, err := busy.answer(); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("the busy connection: %v %v, want its answer", resp, err)
	}
}

// Requests being served are never cut; a new connection is refused
// instead, and served again once one ends.
func TestBoundRefusesWhenAllBusy(t *testing.T) {
	srv, blocked, release := testServer(t, testOptions(2))
	a, b := dial(t, srv), dial(t, srv)
	a.send("/block")
	b.send("/block")
	for range 2 {
		<-blocked
	}
	c := dial(t, srv)
	if !c.closed() {
		t.Fatal("a connection past the bound, with every connection busy, was not refused")
	}
	close(release)
	for name, cn := range map[string]*conn{"a": a, "b": b} {
		if resp, err := cn.answer(); err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("busy connection %s: %v %v, want its answer", name, resp, err)
		}
	}
	if st := srv.Stats(); st.Refused != 1 || st.Evicted != 0 {
		t.Errorf("stats %+v, want 1 refused, 0 evicted", st)
	}
	waitStats(t, srv, func(s Stats) bool { return s.Idle == 2 })
	if code := dial(t, srv).get("/ok"); code != http.StatusOK {
		t.Errorf("after the busy ones ended: %d", code)
	}
}

// One host holding its share with requests it never finishes (each
// waits out its deadline) cannot take the rest: its next connection is
// refused, or takes the place of its own silent one, never another
// host's; a scrape from another host is served. With one host allowed
// every slot (the bound before per-host shares), the scrape was refused.
func TestHostShare(t *testing.T) {
	for name, perHost := range map[string]int{"share of 2": 2, "no share": 4} {
		t.Run(name, func(t *testing.T) {
			o := testOptions(4)
			o.MaxConnsPerHost = perHost
			srv, blocked, release := testServer(t, o)
			defer close(release)
			// The attacker (127.0.0.2): every connection it may hold is
			// busy, plus one more that has said nothing.
			for range perHost {
				dialFrom(t, srv, "127.0.0.2").send("/block")
				<-blocked
			}
			silent := dialFrom(t, srv, "127.0.0.2")
			waitStats(t, srv, func(s Stats) bool { return s.Open == perHost+1 || s.Refused > 0 })
			scrape := dialFrom(t, srv, "127.0.0.3")
			scrape.send("/ok")
			resp, err := scrape.answer()
			served := err == nil && resp.StatusCode == http.StatusOK
			if want := perHost < 4; served != want {
				t.Fatalf("a scrape from another host served: %v (%v %v), want %v", served, resp, err, want)
			}
			if perHost == 4 {
				return
			}
			if !silent.closed() {
				t.Error("the attacker's connection past its share was not refused")
			}
			if st := srv.Stats(); st.Refused != 1 || st.Evicted != 0 {
				t.Errorf("stats %+v, want the attacker's extra connection refused, nothing evicted", st)
			}
			for range 2 {
				dialFrom(t, srv, "127.0.0.2") // refused: its share is busy
			}
			if code := dialFrom(t, srv, "127.0.0.3").get("/ok"); code != http.StatusOK {
				t.Errorf("a second scrape from another host: %d, want 200", code)
			}
		})
	}
}

// Each phase of a connection ends: a header that never completes
// (slowloris), an idle keep-alive connection, and a header over the
// bound (431, before the handler).
func TestDeadlinesAndHeaderBound(t *testing.T) {
	o := testOptions(8)
	o.ReadHeaderTimeout, o.IdleTimeout = 300*time.Millisecond, 300*time.Millisecond
	o.MaxHeaderBytes = 1 << 10
	srv, _, _ := testServer(t, o)

	slow := dial(t, srv)
	if _, err := io.WriteString(slow.c, "GET /ok HTTP/1.1\r\nHost: agent\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	idle := dial(t, srv)
	if code := idle.get("/ok"); code != http.StatusOK {
		t.Fatal(code)
	}
	for name, c := range map[string]*conn{"unfinished header": slow, "idle": idle} {
		if !c.closed() {
			t.Errorf("%s: connection still open after its deadline", name)
		}
	}

	big := dial(t, srv)
	if _, err := io.WriteString(big.c, "GET /ok HTTP/1.1\r\nHost: agent\r\nX-Big: "+strings.Repeat("a", 16<<10)+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if resp, err := big.answer(); err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("16 KiB header: %v %v, want 431", resp, err)
	}
	waitStats(t, srv, func(s Stats) bool { return s.Open == 0 })
}

func TestOptionsValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(*Options)
		want string
	}{
		"defaults":         {func(*Options) {}, ""},
		"no idle timeout":  {func(o *Options) { o.IdleTimeout = 0 }, "idle timeout 0s"},
		"no write timeout": {func(o *Options) { o.WriteTimeout = -time.Second }, "write timeout -1s"},
		"huge timeout":     {func(o *Options) { o.ReadTimeout = time.Hour }, "read timeout 1h0m0s"},
		"no connections":   {func(o *Options) { o.MaxConns = 0 }, "max connections 0"},
		"too many":         {func(o *Options) { o.MaxConns = MaxMaxConns + 1 }, "max connections 4097"},
		"tiny header":      {func(o *Options) { o.MaxHeaderBytes = 100 }, "max header bytes 100"},
		"share over bound": {func(o *Options) { o.MaxConnsPerHost = o.MaxConns + 1 }, "max connections per host 65"},
		"negative share":   {func(o *Options) { o.MaxConnsPerHost = -1 }, "max connections per host -1"},
	} {
		t.Run(name, func(t *testing.T) {
			o := DefaultOptions(":0")
			tc.edit(&o)
			err := o.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

// addrConn is a connection from a given address, for hostOf.
type addrConn struct {
	net.Conn
	addr net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.addr }

// TestHostOf: an IPv6 host holds a /64, so its addresses count as one.
func TestHostOf(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"10.1.2.3", "10.1.2.3"},
		{"::ffff:10.1.2.3", "10.1.2.3"},
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:fffe", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"::1", "::/64"},
	} {
		c := addrConn{addr: &net.TCPAddr{IP: net.ParseIP(tc.addr), Port: 40000}}
		if got := hostOf(c); got != tc.want {
			t.Errorf("hostOf(%s) = %q, want %q", tc.addr, got, tc.want)
		}
	}
	if got := hostOf(addrConn{addr: &net.UnixAddr{Name: "@sock", Net: "unix"}}); got != "@sock" {
		t.Errorf("hostOf(unix) = %q, want the address", got)
	}
}
