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
	max int
	now func() time.Time

	mu      sync.Mutex
	conns   map[net.Conn]*connInfo
	evicted int
	refused int
}

type connInfo struct {
	state http.ConnState
	since time.Time
}

func newConnLimiter(max int) *connLimiter {
	return &connLimiter{max: max, now: time.Now, conns: make(map[net.Conn]*connInfo, max)}
}

func (l *connLimiter) connState(c net.Conn, s http.ConnState) {
	var victim net.Conn
	l.mu.Lock()
	switch s {
	case http.StateNew:
		if len(l.conns) >= l.max {
			// An idle connection has had its answer; one that has sent
			// nothing yet may be a scrape about to speak, so it goes
			// second. Connections in the middle of a request are never
			// cut: their deadlines end them.
			victim = l.oldest(http.StateIdle)
			if victim == nil {
				victim = l.oldest(http.StateNew)
			}
			if victim == nil {
				l.refused++
				l.mu.Unlock()
				hardClose(c)
				return
			}
			delete(l.conns, victim)
			l.evicted++
		}
		l.conns[c] = &connInfo{state: s, since: l.now()}
	case http.StateActive, http.StateIdle:
		if ci := l.conns[c]; ci != nil {
			ci.state, ci.since = s, l.now()
		}
	case http.StateClosed, http.StateHijacked:
		delete(l.conns, c)
	}
	l.mu.Unlock()
	if victim != nil {
		hardClose(victim)
	}
}

// oldest returns the connection longest in state s, or nil. Linear: the
// bound keeps the map small (MaxMaxConns).
func (l *connLimiter) oldest(s http.ConnState) net.Conn {
	var best net.Conn
	var since time.Time
	for c, ci := range l.conns {
		if ci.state == s && (best == nil || ci.since.Before(since)) {
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
