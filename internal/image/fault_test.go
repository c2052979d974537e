package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

func log0() *log.Logger { return log.New(io.Discard, "", 0) }

func appendLayer(t *testing.T, img v1.Image, l v1.Layer) v1.Image {
	t.Helper()
	out, err := mutate.AppendLayers(img, l)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var tagPut = regexp.MustCompile(`^/v2/.+/manifests/[^:]+$`)

// fault wraps a registry and injects faults into matching requests.
type fault struct {
	// match selects requests to fault; faults counts down how many.
	match  func(*http.Request) bool
	faults atomic.Int64
	// do handles a faulted request; next is the real registry.
	do func(w http.ResponseWriter, r *http.Request, next http.Handler)
}

func (f *fault) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.match(r) && f.faults.Add(-1) >= 0 {
			f.do(w, r, next)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func isManifestPut(r *http.Request) bool {
	return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/")
}

func isBlobUpload(r *http.Request) bool {
	return (r.Method == http.MethodPatch || r.Method == http.MethodPut) && strings.Contains(r.URL.Path, "/blobs/uploads/")
}

func fail500(w http.ResponseWriter, _ *http.Request, _ http.Handler) {
	http.Error(w, `{"errors":[{"code":"UNKNOWN","message":"injected"}]}`, http.StatusInternalServerError)
}

// TestPatchFaults: registry faults leave no tag, or the right one.
func TestPatchFaults(t *testing.T) {
	for name, tc := range map[string]struct {
		match   func(*http.Request) bool
		faults  int64
		do      func(http.ResponseWriter, *http.Request, http.Handler)
		timeout time.Duration
		wantTag bool // the push succeeds and the tag exists
	}{
		"manifest PUT always 500": {isManifestPut, 1000, fail500, 0, false},
		"blob upload always 500":  {isBlobUpload, 1000, fail500, 0, false},
		"manifest PUT 500 once":   {isManifestPut, 1, fail500, 0, true},
		"blob upload times out": {isBlobUpload, 1000, func(w http.ResponseWriter, r *http.Request, _ http.Handler) {
			select {
			case <-r.Context().Done():
			case <-time.After(time.Second):
			}
		}, 300 * time.Millisecond, false},
		"manifest PUT hangs": {isManifestPut, 1000, func(w http.ResponseWriter, r *http.Request, _ http.Handler) {
			select {
			case <-r.Context().Done():
			case <-time.After(time.Second):
			}
		}, 300 * time.Millisecond, false},
		"manifest stored then 500": {isManifestPut, 1, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			next.ServeHTTP(httptest.NewRecorder(), r)
			fail500(w, r, next)
		}, 0, true},
		"connection dropped on manifest PUT": {isManifestPut, 1000, func(w http.ResponseWriter, r *http.Request, _ http.Handler) {
			panic(http.ErrAbortHandler)
		}, 0, false},
	} {
		t.Run(name, func(t *testing.T) {
			f := &fault{match: tc.match, do: tc.do}
			host := newRegistry(t, f.wrap)
			ref, _ := pushBase(t, host+"/pods/base:v1", nil)
			f.faults.Store(tc.faults)
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			p := newPatcher(t)
			res, err := p.Patch(ctx, ref, []Patch{oomPatch})
			f.faults.Store(0)
			target := patchedTag(t, ref)
			_, herr := remote.Head(target)
			if tc.wantTag {
				if err != nil || herr != nil {
					t.Fatalf("Patch() error = %v, tag: %v", err, herr)
				}
				if res.Ref.String() != target.String() {
					t.Errorf("ref = %s, want %s", res.Ref, target)
				}
				return
			}
			if err == nil {
				t.Fatal("Patch() succeeded, want an error")
			}
			if herr == nil {
				t.Fatalf("tag %s exists after a failed push", target)
			}
			t.Logf("error (expected): %v", err)
		})
	}
}

// patchedTag is the tag patching ref with oomPatch goes to.
func patchedTag(t *testing.T, ref name.Reference) name.Tag {
	t.Helper()
	d, err := remote.Head(ref)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := TargetTag(ref.Context(), ref, d.Digest, []Patch{oomPatch})
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

func TestPatchTagExists(t *testing.T) {
	host := newRegistry(t, nil)
	ref, _ := pushBase(t, host+"/pods/base:v1", nil)
	target := patchedTag(t, ref)
	squatter, _ := random.Image(100, 1)
	if err := remote.Write(target, squatter); err != nil {
		t.Fatal(err)
	}
	want, _ := squatter.Digest()
	_, err := newPatcher(t).Patch(context.Background(), ref, []Patch{oomPatch})
	if !errors.Is(err, ErrTagExists) {
		t.Fatalf("Patch() error = %v, want ErrTagExists", err)
	}
	if d, _ := remote.Head(target); d.Digest != want {
		t.Errorf("tag overwritten: %s, want %s", d.Digest, want)
	}
}

// immutable behaves like a registry with immutable tags (ECR, Harbor):
// a manifest PUT to an existing tag is refused, even with the same digest.
// Manifest PUTs wait for each other at a barrier so that two racing
// patchers both get past their existence checks.
type immutable struct {
	mu       sync.Mutex
	barrier  sync.WaitGroup
	rejected atomic.Int64
}

func (im *immutable) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isManifestPut(r) || !tagPut.MatchString(r.URL.Path) || strings.HasSuffix(r.URL.Path, ":v1") {
			next.ServeHTTP(w, r)
			return
		}
		if strings.Contains(r.URL.Path, "-pw-") {
			im.barrier.Done()
			im.barrier.Wait()
		}
		im.mu.Lock()
		defer im.mu.Unlock()
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, r.URL.Path, nil))
		if rec.Code == http.StatusOK {
			im.rejected.Add(1)
			http.Error(w, `{"errors":[{"code":"TAG_INVALID","message":"tag is immutable"}]}`, http.StatusBadRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func TestPatchRaceImmutableTags(t *testing.T) {
	im := &immutable{}
	host := newRegistry(t, im.wrap)
	ref, _ := pushBase(t, host+"/pods/base:v1", nil)
	im.barrier.Add(2)
	var wg sync.WaitGroup
	results := make([]*Result, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = newPatcher(t).Patch(context.Background(), ref, []Patch{oomPatch})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("patcher %d: %v", i, err)
		}
	}
	if results[0].Digest != results[1].Digest || results[0].Ref.String() != results[1].Ref.String() {
		t.Errorf("results differ: %s@%s %s@%s", results[0].Ref, results[0].Digest, results[1].Ref, results[1].Digest)
	}
	if im.rejected.Load() != 1 {
		t.Errorf("%d manifest PUTs rejected, want 1 (the race loser)", im.rejected.Load())
	}
	if results[0].Pushed == results[1].Pushed {
		t.Errorf("pushed = %v and %v, want exactly one", results[0].Pushed, results[1].Pushed)
	}
}

// TestBlobRace: which registry answers to a concurrent push make the
// patcher write again rather than fail.
func TestBlobRace(t *testing.T) {
	for name, tc := range map[string]struct {
		err  error
		want bool
	}{
		"digest invalid":           {&transport.Error{StatusCode: 400, Errors: []transport.Diagnostic{{Code: transport.DigestInvalidErrorCode}}}, true},
		"manifest blob unknown":    {fmt.Errorf("put: %w", &transport.Error{StatusCode: 400, Errors: []transport.Diagnostic{{Code: transport.ManifestBlobUnknownErrorCode}}}), true},
		"HEAD 500, no body":        {&transport.Error{StatusCode: 500}, true},
		"500 naming another error": {&transport.Error{StatusCode: 500, Errors: []transport.Diagnostic{{Code: transport.UnknownErrorCode}}}, false},
		"denied":                   {&transport.Error{StatusCode: 403, Errors: []transport.Diagnostic{{Code: transport.DeniedErrorCode}}}, false},
		"404 no body":              {&transport.Error{StatusCode: 404}, false},
		"not a registry error":     {errors.New("connection refused"), false},
	} {
		if got := blobRace(tc.err); got != tc.want {
			t.Errorf("%s: blobRace = %v, want %v", name, got, tc.want)
		}
	}
}
