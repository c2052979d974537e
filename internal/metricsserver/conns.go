package metricsserver

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// connLimiter bounds open connections from http.Server's ConnState hook.
// The hook sees StateNew in the accept loop, before the connection is
// served, so the bound holds without wrapping the listener (which
// exporter-toolkit's TLS would wrap again).
type connLimiter struct {
	max, perHost int
	now          func() time.Time

	mu      sync.Mutex
	conns   map[net.Conn]*connInfo
	hosts   map[string]int // open connections by source address
	evicted int
	refused int
}

type connInfo struct {
	state http.ConnState
	since time.Time
	host  string
}

func newConnLimiter(max, perHost int) *connLimiter {
	return &connLimiter{max: max, perHost: perHost, now: time.Now,
		conns: make(map[net.Conn]*connInfo, max), hosts: map[string]int{}}
}

// hostOf is the source a connection counts against: its IPv4 address (a
// host's connections differ only in their ports), or the /64 of an IPv6
// one. A host is given a whole /64 (SLAAC, privacy addresses, a prefix
// routed to it), so one address per connection is free for it: counted by
// address, the share would bound nothing.
func hostOf(c net.Conn) string {
	a, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return c.RemoteAddr().String()
	}
	if a.IP.To4() != nil || len(a.IP) != net.IPv6len {
		return a.IP.String()
	}
	slash64 := net.CIDRMask(64, 128)
	return (&net.IPNet{IP: a.IP.Mask(slash64), Mask: slash64}).String()
}

func (l *connLimiter) connState(c net.Conn, s http.ConnState) {
	var victim net.Conn
	l.mu.Lock()
	switch s {
	case http.StateNew:
		host := hostOf(c)
		// Past either bound a connection makes room: from the same host
		// when that host is at its share (never another host's), else
		// any. An idle connection has had its answer; one that has sent
		// nothing yet may be a scrape about to speak, so it goes second.
		// Connections in the middle of a request are never cut: their
		// deadlines end them.
		full, from := true, "" // from: the host whose connection makes room; "" any
		switch {
		case l.hosts[host] >= l.perHost:
			from = host
		case len(l.conns) < l.max:
			full = false
		}
		if full {
			victim = l.oldest(http.StateIdle, from)
			if victim == nil {
				victim = l.oldest(http.StateNew, from)
			}
			if victim == nil {
				l.refused++
				l.mu.Unlock()
				hardClose(c)
				return
			}
			l.drop(victim)
			l.evicted++
		}
		l.conns[c] = &connInfo{state: s, since: l.now(), host: host}
		l.hosts[host]++
	case http.StateActive, http.StateIdle:
		if ci := l.conns[c]; ci != nil {
			ci.state, ci.since = s, l.now()
		}
	case http.StateClosed, http.StateHijacked:
		l.drop(c)
	}
	l.mu.Unlock()
	if victim != nil {
		hardClose(victim)
	}
}

// drop forgets c (a connection closed, or evicted: its close comes later
// and finds nothing).
func (l *connLimiter) drop(c net.Conn) {
	ci := l.conns[c]
	if ci == nil {
		return
	}
	delete(l.conns, c)
	if l.hosts[ci.host]--; l.hosts[ci.host] <= 0 {
		delete(l.hosts, ci.host)
	}
}

// oldest returns the connection longest in state s, from host (any when
// empty), or nil. Linear: the bound keeps the map small (MaxMaxConns).
func (l *connLimiter) oldest(s http.ConnState, host string) net.Conn {
	var best net.Conn
	var since time.Time
	for c, ci := range l.conns {
		if ci.state == s && (host == "" || ci.host == host) && (best == nil || ci.since.Before(since)) {
			best, since = c, ci.since
		}
	}
	return best
}

func (l *connLimiter) stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := Stats{Open: len(l.conns), Evicted: l.evicted, Refused: l.refused}
	for _, ci := range l.conns {
		if ci.state == http.StateIdle {
			st.Idle++
		}
	}
	return st
}

// hardClose closes the socket under a TLS connection: tls.Conn.Close
// first writes a close_notify alert, which blocks (up to its write
// deadline) when a client that does not read has filled its buffers, and
// this runs in the accept loop.
func hardClose(c net.Conn) {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn()
	}
	_ = c.Close()
}
