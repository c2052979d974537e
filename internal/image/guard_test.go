package image

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"podwarden/internal/image/regtest"
)

// hostileRegistry answers the /v2/ ping like a registry and hands every
// other request to h. It counts the bytes it writes.
func hostileRegistry(t *testing.T, h func(w http.ResponseWriter, r *http.Request, sent *atomic.Int64)) (string, *atomic.Int64) {
	t.Helper()
	sent := &atomic.Int64{}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		h(w, r, sent)
	}))
	t.Cleanup(func() {
		s.CloseClientConnections()
		s.Close()
	})
	return strings.TrimPrefix(s.URL, "http://"), sent
}

// endless writes chunk to w until the client goes away.
func endless(w http.ResponseWriter, r *http.Request, sent *atomic.Int64, chunk []byte) {
	for r.Context().Err() == nil {
		n, err := w.Write(chunk)
		sent.Add(int64(n))
		if err != nil {
			return
		}
	}
}

// stallAfterHeaders answers with headers and the first bytes of a body,
// then sends nothing more until the test ends.
func stallAfterHeaders(done <-chan struct{}) func(http.ResponseWriter, *http.Request, *atomic.Int64) {
	return func(w http.ResponseWriter, r *http.Request, _ *atomic.Int64) {
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Content-Length", "4096")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"schemaVersion":`))
		w.(http.Flusher).Flush()
		select {
		case <-done:
		case <-r.Context().Done():
		}
	}
}

// TestPatchHungRegistry: with default options, a registry that accepts
// and never answers, or answers headers and then stalls the body, fails
// Patch within a minute with an error naming its host. Each case waits
// out the default stall timeout (30s); they run in parallel.
func TestPatchHungRegistry(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: waits out the default stall timeout")
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	for label, host := range map[string]func(t *testing.T) string{
		"accepts and never answers": func(t *testing.T) string { return regtest.HungListener(t) },
		"headers then stalled body": func(t *testing.T) string {
			h, _ := hostileRegistry(t, stallAfterHeaders(done))
			return h
		},
	} {
		t.Run(label, func(t *testing.T) {
			t.Parallel()
			host := host(t)
			ref, err := name.ParseReference(host + "/pods/base:v1")
			if err != nil {
				t.Fatal(err)
			}
			p, err := NewPatcher()
			if err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			start := time.Now()
			go func() {
				_, err := p.Patch(context.Background(), ref, []Patch{motdPatch})
				errc <- err
			}()
			select {
			case err := <-errc:
				took := time.Since(start)
				t.Logf("failed after %s: %v", took.Round(time.Millisecond), err)
				if err == nil || !strings.Contains(err.Error(), host) {
					t.Fatalf("error %v does not name %s", err, host)
				}
				if took >= time.Minute {
					t.Errorf("took %s, want < 1m", took)
				}
			case <-time.After(2 * time.Minute):
				t.Fatal("Patch still hangs after 2m")
			}
		})
	}
}

// TestPatchEndlessAnswers: answers without end (a manifest, a tag list, a
// ping body) or a config declared huge fail with little read and little
// memory: go-containerregistry alone reads a manifest up to 100 MiB into
// a doubling buffer.
func TestPatchEndlessAnswers(t *testing.T) {
	spaces := []byte(strings.Repeat(" ", 32<<10))
	const config = `{"architecture":"amd64","os":"linux"}`
	manifest := func(cfgSize int64) string {
		return fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
			`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":%d,"digest":"sha256:%x"},"layers":[]}`,
			cfgSize, sha256.Sum256([]byte(config)))
	}
	for label, tc := range map[string]struct {
		h    func(w http.ResponseWriter, r *http.Request, sent *atomic.Int64)
		call func(ctx context.Context, p *Patcher, ref name.Reference) error
	}{
		"endless manifest": {func(w http.ResponseWriter, r *http.Request, sent *atomic.Int64) {
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			_, _ = w.Write([]byte(`{"schemaVersion":2,"annotations":{"a":"`))
			endless(w, r, sent, spaces)
		}, patchCall},
		"manifest with a long Content-Length": {func(w http.ResponseWriter, r *http.Request, sent *atomic.Int64) {
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Header().Set("Content-Length", fmt.Sprint(1<<30))
			endless(w, r, sent, spaces)
		}, patchCall},
		"config declared 1 GiB": {func(w http.ResponseWriter, r *http.Request, sent *atomic.Int64) {
			if strings.Contains(r.URL.Path, "/manifests/") {
				w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
				_, _ = w.Write([]byte(manifest(1 << 30)))
				return
			}
			endless(w, r, sent, spaces)
		}, patchCall},
		"endless tag list": {func(w http.ResponseWriter, r *http.Request, sent *atomic.Int64) {
			switch {
			case strings.Contains(r.URL.Path, "/manifests/"):
				w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
				_, _ = w.Write([]byte(manifest(int64(len(config)))))
			case strings.Contains(r.URL.Path, "/blobs/"):
				_, _ = w.Write([]byte(config))
			default:
				_, _ = w.Write([]byte(`{"name":"pods/base","tags":["`))
				endless(w, r, sent, spaces)
			}
		}, func(ctx context.Context, p *Patcher, ref name.Reference) error {
			return p.Status(ctx, ref, []Patch{motdPatch}).Err
		}},
	} {
		t.Run(label, func(t *testing.T) {
			host, sent := hostileRegistry(t, tc.h)
			ref, err := name.ParseReference(host + "/pods/base:v1")
			if err != nil {
				t.Fatal(err)
			}
			p := newPatcher(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err = tc.call(ctx, p, ref)
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("error: %v; %d bytes sent, %d allocated", err, sent.Load(), alloc)
			if err == nil || !strings.Contains(err.Error(), host) {
				t.Fatalf("error %v does not name %s", err, host)
			}
			// Loose: the bound is 4 MiB, plus what was in flight in
			// socket buffers.
			if s := sent.Load(); s > 16<<20 {
				t.Errorf("registry sent %d bytes before the client gave up", s)
			}
			if alloc > 32<<20 {
				t.Errorf("%d bytes allocated", alloc)
			}
		})
	}
}

func patchCall(ctx context.Context, p *Patcher, ref name.Reference) error {
	_, err := p.Patch(ctx, ref, []Patch{motdPatch})
	return err
}
