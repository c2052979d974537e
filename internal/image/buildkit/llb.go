package buildkit

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerui"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// LabelPatches is the label listing applied patch ids (as in
// podwarden/internal/image).
const LabelPatches = "dev.podwarden.patches"

// RunPatch is a patch made of shell commands.
type RunPatch struct {
	ID  string
	Run []string
}

// RunPatchState returns base with each command of each patch run by
// /bin/sh -c, in order, as one LLB chain.
func RunPatchState(base string, patches []RunPatch) (llb.State, error) {
	if base == "" {
		return llb.State{}, errors.New("base image ref must not be empty")
	}
	if len(patches) == 0 {
		return llb.State{}, errors.New("no patches")
	}
	st := llb.Image(base)
	for _, p := range patches {
		if len(p.Run) == 0 {
			return llb.State{}, fmt.Errorf("patch %s has no commands", p.ID)
		}
		for _, cmd := range p.Run {
			st = st.Run(
				llb.Args([]string{"/bin/sh", "-c", cmd}),
				llb.WithCustomNamef("podwarden patch %s: %s", p.ID, cmd),
			).Root()
		}
	}
	return st, nil
}

// Labels returns the patch label for an image that had applied and now
// also has patches.
func Labels(applied []string, patches []RunPatch) map[string]string {
	ids := append([]string(nil), applied...)
	for _, p := range patches {
		ids = append(ids, p.ID)
	}
	sort.Strings(ids)
	out := ids[:0]
	for i, id := range ids {
		if i == 0 || id != ids[i-1] {
			out = append(out, id)
		}
	}
	return map[string]string{LabelPatches: strings.Join(out, ",")}
}

// IncrementState converts an increment Dockerfile (FROM the parent, then
// the version's instructions) to LLB with BuildKit's Dockerfile frontend.
// resolver supplies the parent's image config (on a live build, the
// gateway client). It returns the state and the image config to export.
func IncrementState(ctx context.Context, dockerfile []byte, resolver sourceresolver.ImageMetaResolver, platform ocispecs.Platform) (llb.State, *dockerspec.DockerOCIImage, error) {
	if resolver == nil {
		return llb.State{}, nil, errors.New("image meta resolver must not be nil")
	}
	res, err := dockerfile2llb.Dockerfile2LLB(ctx, dockerfile, dockerfile2llb.ConvertOpt{
		Config:         dockerui.Config{},
		MetaResolver:   resolver,
		TargetPlatform: &platform,
	})
	if err != nil {
		return llb.State{}, nil, fmt.Errorf("converting increment to LLB: %w", err)
	}
	return res.State, res.Image, nil
}
