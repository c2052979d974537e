package image

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"podwarden/internal/image/regtest"
)

// recorder records "METHOD path?query -> status" of every request.
type recorder struct {
	mu   sync.Mutex
	reqs []string
	rt   http.RoundTripper
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.rt.RoundTrip(req)
	if err == nil {
		r.mu.Lock()
		r.reqs = append(r.reqs, req.Method+" "+req.URL.RequestURI()+" -> "+http.StatusText(resp.StatusCode))
		r.mu.Unlock()
	}
	return resp, err
}

func (r *recorder) find(substr string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, s := range r.reqs {
		if strings.Contains(s, substr) {
			out = append(out, s)
		}
	}
	return out
}

// TestDistributionEndToEnd patches an image in a real distribution
// registry (Debian's docker-registry) and measures the bytes moved.
func TestDistributionEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping docker-registry end-to-end test")
	}
	ctx := context.Background()
	reg, err := regtest.Start(ctx, t.TempDir())
	if errors.Is(err, regtest.ErrNoBinary) {
		t.Skipf("skipping end-to-end test: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)

	base, err := random.Image(4<<20, 4) // 4 layers of 4 MiB
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := pushBase(t, reg.Host+"/pods/base:v1", base)
	size := imageSize(t, base)

	t.Run("same repository", func(t *testing.T) {
		var c Counter
		res, err := newPatcher(t, WithTransport(c.Transport(nil))).Patch(ctx, ref, []Patch{oomPatch})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s -> %s: %d bytes moved (%d sent, %d received) in %d requests; base %d bytes (%.4f%%)",
			ref, res.Ref, c.Total(), c.Sent(), c.Received(), c.Requests(), size, 100*float64(c.Total())/float64(size))
		if c.Total() > size/100 {
			t.Errorf("moved %d bytes, over 1%% of %d", c.Total(), size)
		}
		img, err := remote.Image(res.Ref)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(img); err != nil {
			t.Fatal(err)
		}
		// Again: the tag exists with the same digest, nothing is pushed.
		c.Reset()
		again, err := newPatcher(t, WithTransport(c.Transport(nil))).Patch(ctx, ref, []Patch{oomPatch})
		if err != nil || again.Pushed || again.Digest != res.Digest {
			t.Fatalf("second patch: %+v %v", again, err)
		}
		t.Logf("second patch: %d bytes, %d requests, nothing pushed", c.Total(), c.Requests())
	})

	t.Run("cross-repository mount", func(t *testing.T) {
		var c Counter
		rec := &recorder{rt: c.Transport(nil)}
		res, err := newPatcher(t, WithTransport(rec), WithRepository(reg.Host+"/pods/patched")).Patch(ctx, ref, []Patch{oomPatch})
		if err != nil {
			t.Fatal(err)
		}
		mounts := rec.find("mount=")
		created := rec.find("mount=sha256")
		t.Logf("%s -> %s: %d bytes moved, %d mount requests", ref, res.Ref, c.Total(), len(mounts))
		n := 0
		for _, m := range created {
			if strings.HasSuffix(m, "-> Created") {
				n++
			}
		}
		if n != 4 {
			t.Errorf("%d base layers cross-repo mounted (201), want 4:\n%s", n, strings.Join(mounts, "\n"))
		}
		if c.Total() > size/100 {
			t.Errorf("moved %d bytes, over 1%% of %d", c.Total(), size)
		}
		if _, err := remote.Image(res.Ref); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		res := patchAtOnce(t, ctx, 6, func() *Patcher { return newPatcher(t) }, ref, []Patch{oomPatch, motdPatch})
		tags, err := remote.List(ref.Context())
		if err != nil {
			t.Fatal(err)
		}
		prefixed := 0
		for _, tag := range tags {
			if strings.HasPrefix(tag, "v1-pw-") {
				prefixed++
			}
		}
		if prefixed != 2 { // oom only (first subtest), oom+motd
			t.Errorf("tags %v", tags)
		}
		d, err := remote.Head(res.Ref)
		if err != nil || d.Digest != res.Digest {
			t.Errorf("tag digest %v %v", d, err)
		}
	})
}
