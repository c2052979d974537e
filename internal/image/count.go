package image

import (
	"io"
	"net/http"
	"sync/atomic"
)

// Counter counts the bytes that go over the HTTP transports it wraps:
// request bodies as sent, response bodies as received. Use it to show
// that patching moves no base layer bytes.
type Counter struct {
	sent, received, requests atomic.Int64
}

// Sent returns the request body bytes sent so far.
func (c *Counter) Sent() int64 { return c.sent.Load() }

// Received returns the response body bytes received so far.
func (c *Counter) Received() int64 { return c.received.Load() }

// Requests returns the number of requests made so far.
func (c *Counter) Requests() int64 { return c.requests.Load() }

// Total returns Sent()+Received().
func (c *Counter) Total() int64 { return c.Sent() + c.Received() }

// Reset sets the counts to zero.
func (c *Counter) Reset() {
	c.sent.Store(0)
	c.received.Store(0)
	c.requests.Store(0)
}

// Transport wraps rt (http.DefaultTransport if nil) so its traffic is
// counted.
func (c *Counter) Transport(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return &countingTransport{c: c, rt: rt}
}

type countingTransport struct {
	c  *Counter
	rt http.RoundTripper
}

var _ http.RoundTripper = (*countingTransport)(nil)

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.c.requests.Add(1)
	if req.Body != nil && req.Body != http.NoBody {
		req = req.Clone(req.Context())
		req.Body = &countingReader{ReadCloser: req.Body, n: &t.c.sent}
	}
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.Body != nil {
		resp.Body = &countingReader{ReadCloser: resp.Body, n: &t.c.received}
	}
	return resp, nil
}

type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.n.Add(int64(n))
	return n, err
}
