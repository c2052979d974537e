package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Bounds on what a registry can make a Patcher read or wait for. A
// registry is not trusted to be well-behaved: it may be down in a way that
// accepts connections and never answers, or answer without end.
const (
	// MaxManifestSize bounds a manifest. The OCI distribution spec says
	// registries SHOULD accept manifests of at least 4 MiB and MAY refuse
	// larger ones, and distribution and Docker Hub do refuse them, so no
	// manifest that could have been pushed is larger. Single-platform
	// manifests of real images are a few KiB. go-containerregistry's own
	// cut (100 MiB, into a doubling buffer) let an endless manifest cost
	// 273 MB of RSS.
	MaxManifestSize = 4 << 20
	// MaxConfigSize bounds an image config, checked against the size its
	// manifest declares before it is fetched (go-containerregistry then
	// reads no more than that size). A config is JSON with the env,
	// labels, and one history entry and diff id per layer: a few KiB, and
	// overlayfs' limit of about 128 layers keeps even large ones far
	// below this.
	MaxConfigSize = 8 << 20
	// maxOtherSize bounds every other answer that is not a blob: tag list
	// pages (go-containerregistry asks for 1000 tags a page, and a tag
	// has at most 128 characters: about 130 KB), the /v2/ ping, upload
	// session answers. go-containerregistry decodes tag lists without a
	// bound and drains the ping's body to its end.
	maxOtherSize = 4 << 20
	// DefaultStallTimeout is how long a registry request may move no byte
	// at all, either way, before it fails: no answer to a request, a body
	// that stops, an upload the registry stops taking. It is per request
	// and resets on progress, so a large upload on a slow link still
	// finishes; the command's --timeout bounds the whole.
	DefaultStallTimeout = 30 * time.Second
)

// ErrTooLarge is wrapped by the error for an answer over its bound.
var ErrTooLarge = errors.New("answer larger than podwarden accepts")

// StallError is a registry request that made no progress for After.
type StallError struct {
	Host, Method, Path string
	After              time.Duration
}

func (e *StallError) Error() string {
	return fmt.Sprintf("registry %s: no progress for %s on %s %s: giving up", e.Host, e.After, e.Method, e.Path)
}

// Timeout makes it a net.Error-style timeout. It has no Temporary method:
// go-containerregistry retries temporary errors, and a hung registry
// retried three times would take three times as long to report.
func (e *StallError) Timeout() bool { return true }

// guard is the transport every registry call of a Patcher goes through:
// a watchdog per request, and bounds on the answers.
type guard struct {
	next  http.RoundTripper
	stall time.Duration
}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	w := &watchdog{d: g.stall, cancel: cancel}
	w.timer = time.AfterFunc(g.stall, w.fire)
	stallErr := func() error {
		return &StallError{Host: req.URL.Host, Method: req.Method, Path: req.URL.Path, After: g.stall}
	}
	req = req.WithContext(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &progressReader{ReadCloser: req.Body, w: w}
	}
	resp, err := g.next.RoundTrip(req)
	if err != nil {
		w.stop()
		if w.fired.Load() {
			return nil, stallErr()
		}
		return nil, err
	}
	limit, what := answerLimit(req)
	tooLarge := func() error {
		return fmt.Errorf("registry %s: %s %s: %s over %d bytes: %w", req.URL.Host, req.Method, req.URL.Path, what, limit, ErrTooLarge)
	}
	if limit > 0 && resp.ContentLength > limit {
		resp.Body.Close()
		w.stop()
		return nil, tooLarge()
	}
	resp.Body = &guardedBody{rc: resp.Body, w: w, limit: limit, tooLarge: tooLarge, stallErr: stallErr}
	return resp, nil
}

// answerLimit is the bound of req's answer, 0 for none. Blobs have none
// here: a config's size is checked against MaxConfigSize before it is
// fetched, layers are as large as the image is, and go-containerregistry
// reads a blob no further than the size its manifest declares.
func answerLimit(req *http.Request) (int64, string) {
	p := req.URL.Path
	switch {
	case strings.Contains(p, "/manifests/"):
		return MaxManifestSize, "manifest"
	case strings.Contains(p, "/blobs/") && !strings.Contains(p, "/blobs/uploads/"):
		return 0, ""
	default:
		return maxOtherSize, "answer"
	}
}

// watchdog cancels a request that made no progress for d.
type watchdog struct {
	d      time.Duration
	timer  *time.Timer
	fired  atomic.Bool
	cancel context.CancelFunc
}

func (w *watchdog) fire() {
	w.fired.Store(true)
	w.cancel()
}

func (w *watchdog) progress() {
	if !w.fired.Load() {
		w.timer.Reset(w.d)
	}
}

func (w *watchdog) stop() {
	w.timer.Stop()
	w.cancel()
}

// progressReader is a request body: the registry taking bytes is progress.
type progressReader struct {
	io.ReadCloser
	w *watchdog
}

func (r *progressReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if n > 0 {
		r.w.progress()
	}
	return n, err
}

// guardedBody is a response body under the watchdog and a size bound.
type guardedBody struct {
	rc       io.ReadCloser
	w        *watchdog
	limit, n int64
	tooLarge func() error
	stallErr func() error
}

func (b *guardedBody) Read(p []byte) (int, error) {
	if b.limit > 0 {
		if b.n > b.limit {
			return 0, b.tooLarge()
		}
		// One byte past the limit tells a body of exactly limit bytes
		// from a longer one.
		if room := b.limit + 1 - b.n; int64(len(p)) > room {
			p = p[:room]
		}
	}
	n, err := b.rc.Read(p)
	b.n += int64(n)
	if n > 0 {
		b.w.progress()
	}
	switch {
	case b.limit > 0 && b.n > b.limit:
		return n, b.tooLarge()
	case err != nil && err != io.EOF && b.w.fired.Load():
		return n, b.stallErr()
	}
	return n, err
}

func (b *guardedBody) Close() error {
	b.w.stop()
	return b.rc.Close()
}
