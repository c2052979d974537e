package image

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/singleflight"
)

var (
	// ErrTagExists is returned when the target tag holds a different
	// digest. Tags are never overwritten.
	ErrTagExists = errors.New("target tag exists with a different digest")
	// ErrIndex is returned for image indexes (multi-platform images).
	ErrIndex = errors.New("image indexes are not supported yet: patch a single-platform image")
)

// recheckTimeout bounds the re-read of a tag after a failed push, which
// runs even when the caller's context has expired.
const recheckTimeout = 10 * time.Second

// Patcher applies file patches to images in a registry.
type Patcher struct {
	o     *options
	group singleflight.Group
}

// NewPatcher returns a Patcher configured by opts.
func NewPatcher(opts ...Option) (*Patcher, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	return &Patcher{o: o}, nil
}

// Info is what an image says about its patches.
type Info struct {
	Ref    name.Reference
	Digest v1.Hash
	// Patches are the ids in its LabelPatches label, sorted.
	Patches []string
	// Image is the image itself; its layers are fetched only on use.
	Image v1.Image
	// Annotations of its manifest.
	Annotations map[string]string
}

// Result is the outcome of Patch.
type Result struct {
	// Ref is the ref to run: the target tag, or the source ref when the
	// image already had every patch.
	Ref    name.Reference
	Digest v1.Hash
	// Source is the image that was patched, by digest.
	Source name.Digest
	// Had lists the patches the source already had; Applied the ones this
	// call added (empty for a no-op).
	Had, Applied []string
	// Pushed is true when this call wrote the tag, false when it found
	// the identical image there (or nothing had to be done).
	Pushed bool
}

// NoOp reports whether the source already had every patch.
func (r *Result) NoOp() bool { return len(r.Applied) == 0 }

// Inspect reads ref's manifest and config, never its layers.
func (p *Patcher) Inspect(ctx context.Context, ref name.Reference) (*Info, error) {
	desc, err := remote.Get(ref, p.o.remoteOptions(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("getting %s: %w", ref, err)
	}
	if desc.MediaType.IsIndex() {
		return nil, fmt.Errorf("%s: %w", ref, ErrIndex)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, fmt.Errorf("reading image %s: %w", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest of %s: %w", ref, err)
	}
	if err := checkConfigSize(ref, m); err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config of %s: %w", ref, err)
	}
	return &Info{Ref: ref, Digest: desc.Digest, Patches: appliedPatches(cfg), Image: img, Annotations: m.Annotations}, nil
}

// checkConfigSize refuses an image whose manifest declares a config over
// MaxConfigSize, before the config is fetched.
func checkConfigSize(ref name.Reference, m *v1.Manifest) error {
	if m.Config.Size > MaxConfigSize || m.Config.Size < 0 {
		return fmt.Errorf("%s: config %s declares %d bytes, over %d: %w", ref, m.Config.Digest, m.Config.Size, MaxConfigSize, ErrTooLarge)
	}
	return nil
}

// Missing returns the patches in want that info does not have, in order.
func (info *Info) Missing(want []Patch) []Patch {
	var out []Patch
	for _, pt := range want {
		i := sort.SearchStrings(info.Patches, pt.ID)
		if i < len(info.Patches) && info.Patches[i] == pt.ID {
			continue
		}
		out = append(out, pt)
	}
	return out
}

// Patch makes sure an image with every patch in patches exists and
// returns it. If ref already has them all, it returns ref unchanged.
// Otherwise it applies the missing ones and pushes the result to
// TargetTag: RUN patches first, through the Runner (WithRunner), then the
// file patches as one layer. If the tag already holds the identical image
// it is returned without a push; if it holds another digest Patch fails
// with ErrTagExists, except when RUN patches are involved (BuildKit output
// is not byte-reproducible) and the image there is made from the same
// source and has every patch: then it is returned. Concurrent calls for
// the same target in one Patcher share one push.
func (p *Patcher) Patch(ctx context.Context, ref name.Reference, patches []Patch) (*Result, error) {
	info, err := p.Inspect(ctx, ref)
	if err != nil {
		return nil, err
	}
	src := ref.Context().Digest(info.Digest.String())
	missing := info.Missing(patches)
	if len(missing) == 0 {
		return &Result{Ref: ref, Digest: info.Digest, Source: src, Had: info.Patches}, nil
	}
	var runs, files []Patch
	for _, pt := range missing {
		if err := pt.validate(); err != nil {
			return nil, err
		}
		if len(pt.Run) > 0 {
			runs = append(runs, pt)
		} else {
			files = append(files, pt)
		}
	}
	if len(runs) > 0 && p.o.runner == nil {
		return nil, fmt.Errorf("patches %s: %w", strings.Join(ids(runs), ","), ErrRunPatch)
	}
	repo := ref.Context()
	if p.o.repo != nil {
		repo = *p.o.repo
	}
	target, err := TargetTag(repo, ref, info.Digest, missing)
	if err != nil {
		return nil, err
	}
	result := func(d v1.Hash, pushed bool) *Result {
		return &Result{Ref: target, Digest: d, Source: src, Had: info.Patches, Applied: ids(missing), Pushed: pushed}
	}
	if len(runs) == 0 {
		img, err := patched(info.Image, info, ref, files, missing)
		if err != nil {
			return nil, err
		}
		v, err, _ := p.group.Do(target.String(), func() (any, error) {
			return p.push(ctx, target, img, nil)
		})
		if err != nil {
			return nil, err
		}
		return result(img.digest, v.(bool)), nil
	}
	type out struct {
		d      v1.Hash
		pushed bool
	}
	v, err, _ := p.group.Do(target.String(), func() (any, error) {
		equivalent := p.equivalent(info, missing)
		// Builds are expensive: look before running one.
		if d, ok, err := p.existing(ctx, target, equivalent); err != nil || ok {
			return out{d: d}, err
		}
		mid, err := p.o.runner.Run(ctx, src, repo, runs)
		if err != nil {
			return nil, fmt.Errorf("running %s: %w", strings.Join(ids(runs), ","), err)
		}
		midImg, err := remote.Image(mid, p.o.remoteOptions(ctx)...)
		if err != nil {
			return nil, fmt.Errorf("reading built image %s: %w", mid, err)
		}
		if m, err := midImg.Manifest(); err != nil {
			return nil, fmt.Errorf("reading manifest of %s: %w", mid, err)
		} else if err := checkConfigSize(mid, m); err != nil {
			return nil, err
		}
		img, err := patched(midImg, info, ref, files, missing)
		if err != nil {
			return nil, err
		}
		pushed, err := p.push(ctx, target, img, equivalent)
		if err != nil {
			return nil, err
		}
		d, _, err := p.existing(ctx, target, nil)
		return out{d: d, pushed: pushed}, err
	})
	if err != nil {
		return nil, err
	}
	o := v.(out)
	return result(o.d, o.pushed), nil
}

// equivalent accepts an image made from info's digest that has every
// patch of info plus missing.
func (p *Patcher) equivalent(info *Info, missing []Patch) func(context.Context, name.Tag) bool {
	return func(ctx context.Context, t name.Tag) bool {
		got, err := p.Inspect(ctx, t)
		if err != nil || got.Annotations[AnnotationBaseDigest] != info.Digest.String() {
			return false
		}
		return len((&Info{Patches: got.Patches}).Missing(append(missing, patchIDs(info.Patches)...))) == 0
	}
}

func patchIDs(ids []string) []Patch {
	out := make([]Patch, len(ids))
	for i, id := range ids {
		out[i] = Patch{ID: id}
	}
	return out
}

// existing returns target's digest and true if target exists and (when
// accept is set) is acceptable.
func (p *Patcher) existing(ctx context.Context, target name.Tag, accept func(context.Context, name.Tag) bool) (v1.Hash, bool, error) {
	d, err := p.head(ctx, target)
	if err != nil || d == (v1.Hash{}) {
		return d, false, err
	}
	if accept != nil && !accept(ctx, target) {
		return d, false, fmt.Errorf("%s holds %s, which lacks the patches: %w", target, d, ErrTagExists)
	}
	return d, true, nil
}

type patchedImage struct {
	v1.Image
	digest v1.Hash
}

// patched builds (lazily, no layer is read) base + files, labelled with
// info's patches and missing, annotated with ref and info's digest.
func patched(base v1.Image, info *Info, ref name.Reference, files, missing []Patch) (*patchedImage, error) {
	m, err := base.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	img := base
	if len(files) > 0 {
		mt := types.OCILayer
		if m.MediaType == types.DockerManifestSchema2 {
			mt = types.DockerLayer
		}
		layer, err := NewLayer(files, mt)
		if err != nil {
			return nil, err
		}
		img, err = mutate.Append(base, mutate.Addendum{
			Layer:     layer,
			MediaType: mt,
			History: v1.History{
				CreatedBy: "podwarden image patch --patches " + strings.Join(ids(files), ","),
				Comment:   "backport",
			},
		})
		if err != nil {
			return nil, fmt.Errorf("appending patch layer: %w", err)
		}
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	c := *cfg.Config.DeepCopy()
	c.Labels = maps.Clone(c.Labels)
	if c.Labels == nil {
		c.Labels = map[string]string{}
	}
	all := append(append([]string(nil), info.Patches...), ids(missing)...)
	sort.Strings(all)
	c.Labels[LabelPatches] = strings.Join(dedup(all), ",")
	if img, err = mutate.Config(img, c); err != nil {
		return nil, fmt.Errorf("setting patch label: %w", err)
	}
	img = mutate.Annotations(img, map[string]string{
		AnnotationBaseName:   ref.Name(),
		AnnotationBaseDigest: info.Digest.String(),
	}).(v1.Image)
	d, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("computing patched digest: %w", err)
	}
	return &patchedImage{Image: img, digest: d}, nil
}

// push writes img to target unless target exists (with img's digest, or
// an image accept takes). The manifest PUT that creates the tag comes after
// every blob, so a failure leaves no tag. It reports whether this call
// wrote the tag.
func (p *Patcher) push(ctx context.Context, target name.Tag, img *patchedImage, accept func(context.Context, name.Tag) bool) (bool, error) {
	d, err := p.head(ctx, target)
	switch {
	case err != nil:
		return false, err
	case d == img.digest:
		return false, nil
	case d != (v1.Hash{}) && accept != nil && accept(ctx, target):
		return false, nil
	case d != (v1.Hash{}):
		return false, fmt.Errorf("%s holds %s, want %s: %w", target, d, img.digest, ErrTagExists)
	}
	// Two patchers uploading the same blob at once can make the registry
	// reject one upload (DIGEST_INVALID, then MANIFEST_BLOB_UNKNOWN on the
	// manifest): seen with distribution 2.8. The loser retries the whole
	// write; blobs already there are skipped by HEAD.
	var werr error
	var rctx context.Context
	for attempt := 0; ; attempt++ {
		werr = remote.Write(target, img, p.o.remoteOptions(ctx)...)
		// Re-read the tag whatever happened: after a race or on a registry
		// with immutable tags the push fails though the right image is
		// there, and a push that "succeeded" must not have replaced someone
		// else's digest.
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), recheckTimeout)
		defer cancel()
		d, err = p.headSettled(rctx, target)
		if werr == nil || err != nil || d != (v1.Hash{}) || !blobRace(werr) || attempt == maxBlobRaceRetries {
			break
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("pushing %s: %w", target, ctx.Err())
		case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
		}
	}
	switch {
	case err == nil && d == img.digest:
		return werr == nil, nil
	case err == nil && d != (v1.Hash{}) && accept != nil && accept(rctx, target):
		return false, nil
	case err == nil && d != (v1.Hash{}):
		return false, fmt.Errorf("%s holds %s after push, want %s: %w", target, d, img.digest, ErrTagExists)
	case werr != nil:
		return false, fmt.Errorf("pushing %s: %w", target, werr)
	case err != nil:
		return false, fmt.Errorf("checking %s after push: %w", target, err)
	default:
		return false, fmt.Errorf("checking %s after push: tag missing", target)
	}
}

// head returns the digest target points at, or a zero Hash if it does not
// exist.
func (p *Patcher) head(ctx context.Context, target name.Tag) (v1.Hash, error) {
	desc, err := remote.Head(target, p.o.remoteOptions(ctx)...)
	if err != nil {
		var terr *transport.Error
		if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
			return v1.Hash{}, nil
		}
		return v1.Hash{}, fmt.Errorf("checking %s: %w", target, err)
	}
	return desc.Digest, nil
}

// maxBlobRaceRetries bounds the re-pushes after a concurrent blob upload
// was rejected.
const maxBlobRaceRetries = 6

// blobRace reports whether err is a registry's rejection of a blob that a
// concurrent upload of the same content can cause.
func blobRace(err error) bool {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return false
	}
	if len(terr.Errors) == 0 && terr.StatusCode >= 500 {
		// A blob HEAD answered 500 while another patcher's upload of the
		// same blob was being committed (distribution 2.8, seen under
		// load): a HEAD has no body to say more.
		return true
	}
	for _, d := range terr.Errors {
		switch d.Code {
		case transport.DigestInvalidErrorCode, transport.BlobUnknownErrorCode, transport.ManifestBlobUnknownErrorCode, transport.BlobUploadInvalidErrorCode, transport.BlobUploadUnknownErrorCode:
			return true
		}
	}
	return false
}

// headSettled is head retried over server errors: distribution answers 500
// while concurrent pushes to the same tag are settling.
func (p *Patcher) headSettled(ctx context.Context, target name.Tag) (v1.Hash, error) {
	for attempt := 0; ; attempt++ {
		d, err := p.head(ctx, target)
		var terr *transport.Error
		if err == nil || attempt == 4 || !errors.As(err, &terr) || terr.StatusCode < 500 {
			return d, err
		}
		select {
		case <-ctx.Done():
			return d, err
		case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
		}
	}
}
