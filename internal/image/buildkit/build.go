package buildkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// ErrTagExists is returned when the target tag names another digest.
var ErrTagExists = errors.New("target tag exists with a different digest")

// Request is one build: either an increment Dockerfile or RUN patches on
// a base, pushed to Target.
type Request struct {
	// Dockerfile is an increment: FROM the parent, then instructions.
	Dockerfile []byte
	// Base and Patches describe a RUN patch build instead.
	Base    string
	Patches []RunPatch
	// Target is the tag to create, e.g. registry/pods/base:v3. If it is
	// zero, the image is only pushed by digest into Repository.
	Target     name.Tag
	Repository name.Repository
	Platform   ocispecs.Platform
	// Insecure allows a plain-HTTP registry for the push.
	Insecure bool
}

// Result is what a build produced.
type Result struct {
	Digest v1.Hash
	// Tagged is true when this build created the tag, false when the tag
	// already named the identical digest.
	Tagged bool
}

// Build solves req on the buildkitd c is connected to, pushes the image by
// digest, then creates req.Target only if it is absent or already names
// the same digest. opts are used for the registry calls.
func Build(ctx context.Context, c *client.Client, req Request, opts ...remote.Option) (*Result, error) {
	if (len(req.Dockerfile) == 0) == (req.Base == "") {
		return nil, errors.New("a build needs either an increment Dockerfile or a base with RUN patches")
	}
	if req.Platform.OS == "" {
		req.Platform = ocispecs.Platform{OS: "linux", Architecture: "amd64"}
	}
	repo := req.Repository
	if req.Target != (name.Tag{}) {
		repo = req.Target.Context()
	}
	if repo == (name.Repository{}) {
		return nil, errors.New("a build needs a target tag or a repository")
	}
	attrs := map[string]string{
		"name":           repo.Name(),
		"push":           "true",
		"push-by-digest": "true",
	}
	if req.Insecure {
		attrs["registry.insecure"] = "true"
	}
	resp, err := c.Build(ctx, client.SolveOpt{
		Exports: []client.ExportEntry{{Type: client.ExporterImage, Attrs: attrs}},
	}, "podwarden", func(ctx context.Context, gc gateway.Client) (*gateway.Result, error) {
		return solve(ctx, gc, req)
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("building for %s: %w", repo, err)
	}
	d, err := v1.NewHash(resp.ExporterResponse[exptypes.ExporterImageDigestKey])
	if err != nil {
		return nil, fmt.Errorf("reading pushed digest: %w", err)
	}
	if req.Target == (name.Tag{}) {
		return &Result{Digest: d}, nil
	}
	tagged, err := tagIfAbsent(ctx, req.Target, d, opts...)
	if err != nil {
		return nil, err
	}
	return &Result{Digest: d, Tagged: tagged}, nil
}

func solve(ctx context.Context, gc gateway.Client, req Request) (*gateway.Result, error) {
	var st llb.State
	var img *dockerspec.DockerOCIImage
	if len(req.Dockerfile) > 0 {
		s, i, err := IncrementState(ctx, req.Dockerfile, gc, req.Platform)
		if err != nil {
			return nil, err
		}
		st, img = s, i
	} else {
		_, _, cfg, err := gc.ResolveImageConfig(ctx, req.Base, sourceresolver.Opt{
			ImageOpt: &sourceresolver.ResolveImageOpt{Platform: &req.Platform},
		})
		if err != nil {
			return nil, fmt.Errorf("resolving %s: %w", req.Base, err)
		}
		img = &dockerspec.DockerOCIImage{}
		if err := json.Unmarshal(cfg, img); err != nil {
			return nil, fmt.Errorf("reading config of %s: %w", req.Base, err)
		}
		applied := splitLabel(img.Config.Labels[LabelPatches])
		if img.Config.Labels == nil {
			img.Config.Labels = map[string]string{}
		}
		maps.Copy(img.Config.Labels, Labels(applied, req.Patches))
		if st, err = RunPatchState(req.Base, req.Patches); err != nil {
			return nil, err
		}
	}
	def, err := st.Marshal(ctx, llb.Platform(req.Platform))
	if err != nil {
		return nil, fmt.Errorf("marshaling LLB: %w", err)
	}
	res, err := gc.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB()})
	if err != nil {
		return nil, fmt.Errorf("solving: %w", err)
	}
	cfg, err := json.Marshal(img)
	if err != nil {
		return nil, fmt.Errorf("encoding image config: %w", err)
	}
	res.AddMeta(exptypes.ExporterImageConfigKey, cfg)
	return res, nil
}

// tagIfAbsent points target at digest d unless target names another
// digest. It reports whether it created the tag.
func tagIfAbsent(ctx context.Context, target name.Tag, d v1.Hash, opts ...remote.Option) (bool, error) {
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	head := func() (v1.Hash, error) {
		desc, err := remote.Head(target, opts...)
		var terr *transport.Error
		if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
			return v1.Hash{}, nil
		}
		if err != nil {
			return v1.Hash{}, fmt.Errorf("checking %s: %w", target, err)
		}
		return desc.Digest, nil
	}
	cur, err := head()
	switch {
	case err != nil:
		return false, err
	case cur == d:
		return false, nil
	case cur != (v1.Hash{}):
		return false, fmt.Errorf("%s holds %s, built %s: %w", target, cur, d, ErrTagExists)
	}
	desc, err := remote.Get(target.Context().Digest(d.String()), opts...)
	if err != nil {
		return false, fmt.Errorf("reading pushed image: %w", err)
	}
	terr := remote.Tag(target, desc, opts...)
	// Re-read whatever happened: a racing build of the same digest, or an
	// immutable-tag registry refusing the re-push, is fine.
	cur, err = head()
	switch {
	case err == nil && cur == d:
		return terr == nil, nil
	case err == nil && cur != (v1.Hash{}):
		return false, fmt.Errorf("%s holds %s, built %s: %w", target, cur, d, ErrTagExists)
	case terr != nil:
		return false, fmt.Errorf("tagging %s: %w", target, terr)
	default:
		return false, fmt.Errorf("tagging %s: tag missing afterwards: %v", target, err)
	}
}

func splitLabel(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}
