package image

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// randomRunner stands in for BuildKit: it "runs" a patch by appending a
// random layer, so, like a cold BuildKit, every run gives a new digest.
type randomRunner struct {
	calls atomic.Int64
	fail  error
}

func (r *randomRunner) Run(ctx context.Context, base name.Digest, repo name.Repository, patches []Patch) (name.Digest, error) {
	r.calls.Add(1)
	if r.fail != nil {
		return name.Digest{}, r.fail
	}
	img, err := remote.Image(base, remote.WithContext(ctx))
	if err != nil {
		return name.Digest{}, err
	}
	for range patches {
		l, err := random.Layer(512, "application/vnd.docker.image.rootfs.diff.tar.gzip")
		if err != nil {
			return name.Digest{}, err
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return name.Digest{}, err
		}
	}
	d, err := img.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	out := repo.Digest(d.String())
	return out, remote.Write(out, img, remote.WithContext(ctx))
}

func TestPatchRun(t *testing.T) {
	host := newRegistry(t, nil)
	ref, base := pushBase(t, host+"/pods/base:v1", nil)
	ctx := context.Background()
	r1 := &randomRunner{}
	res, err := newPatcher(t, WithRunner(r1)).Patch(ctx, ref, []Patch{runPatch, oomPatch})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Pushed || r1.calls.Load() != 1 {
		t.Errorf("result %+v, %d runs", res, r1.calls.Load())
	}
	img, err := remote.Image(res.Ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigFile()
	m, _ := img.Manifest()
	bd, _ := base.Digest()
	if cfg.Config.Labels[LabelPatches] != "curl,oom-score-adj" || m.Annotations[AnnotationBaseDigest] != bd.String() || len(m.Layers) != 5 {
		t.Errorf("label %q, annotations %v, %d layers", cfg.Config.Labels[LabelPatches], m.Annotations, len(m.Layers))
	}

	// Another patcher, whose build would give another digest: it finds the
	// tag, accepts it (same source, every patch) and builds nothing.
	r2 := &randomRunner{}
	again, err := newPatcher(t, WithRunner(r2)).Patch(ctx, ref, []Patch{runPatch, oomPatch})
	if err != nil {
		t.Fatal(err)
	}
	if again.Digest != res.Digest || again.Pushed || r2.calls.Load() != 0 {
		t.Errorf("second patch %+v, %d runs", again, r2.calls.Load())
	}
	// A no-op on the patched image.
	noop, err := newPatcher(t, WithRunner(r2)).Patch(ctx, res.Ref, []Patch{runPatch, oomPatch})
	if err != nil || !noop.NoOp() {
		t.Errorf("patching the patched image: %+v %v", noop, err)
	}
}

// TestPatchRunConcurrent: RUN patch output differs from build to build,
// so racing patchers converge only where the registry helps. In one
// process (one Patcher) they share one build; against a registry with
// immutable tags the losers adopt the winner's image. (A registry that
// silently overwrites tags may end with either equivalent image; every
// caller still gets a valid tag@digest.)
func TestPatchRunConcurrent(t *testing.T) {
	for name, tc := range map[string]struct {
		wrap   func(*testing.T) func(http.Handler) http.Handler
		shared bool
	}{
		"one patcher": {nil, true},
		"immutable tags": {func(t *testing.T) func(http.Handler) http.Handler {
			im := &immutable{}
			im.barrier.Add(2)
			return im.wrap
		}, false},
	} {
		t.Run(name, func(t *testing.T) {
			var wrap func(http.Handler) http.Handler
			if tc.wrap != nil {
				wrap = tc.wrap(t)
			}
			host := newRegistry(t, wrap)
			ref, _ := pushBase(t, host+"/pods/base:v1", nil)
			shared := newPatcher(t, WithRunner(&randomRunner{}))
			res := patchAtOnce(t, context.Background(), 2, func() *Patcher {
				if tc.shared {
					return shared
				}
				return newPatcher(t, WithRunner(&randomRunner{}))
			}, ref, []Patch{runPatch})
			d, err := remote.Head(res.Ref)
			if err != nil || d.Digest != res.Digest {
				t.Errorf("tag holds %v (%v), want %s", d, err, res.Digest)
			}
		})
	}
}

func TestPatchRunErrors(t *testing.T) {
	host := newRegistry(t, nil)
	ref, _ := pushBase(t, host+"/pods/base:v1", nil)
	ctx := context.Background()
	boom := errors.New("buildkitd unreachable")
	if _, err := newPatcher(t, WithRunner(&randomRunner{fail: boom})).Patch(ctx, ref, []Patch{runPatch}); !errors.Is(err, boom) {
		t.Errorf("runner failure: %v", err)
	}
	// A tag that lacks the patches is never taken over.
	d, _ := remote.Head(ref)
	target, _ := TargetTag(ref.Context(), ref, d.Digest, []Patch{runPatch})
	squat, _ := random.Image(10, 1)
	remote.Write(target, squat)
	_, err := newPatcher(t, WithRunner(&randomRunner{})).Patch(ctx, ref, []Patch{runPatch})
	if !errors.Is(err, ErrTagExists) || !strings.Contains(err.Error(), "lacks the patches") {
		t.Errorf("squatted tag: %v", err)
	}
	if _, err := NewPatcher(WithRunner(nil)); err == nil {
		t.Error("WithRunner(nil) accepted")
	}
}
