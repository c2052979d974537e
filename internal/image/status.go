package image

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// State is where one patch stands on one base image.
type State string

// States of a patch on a base.
const (
	// Applied: the base, or a patched tag made from it, has the patch.
	Applied State = "applied"
	// Pending: nothing has the patch yet; Patch would apply it.
	Pending State = "pending"
	// Failed: the base could not be read.
	Failed State = "failed"
	// Unsupported: a RUN patch that is not applied and the Patcher has no
	// Runner; see ErrRunPatch.
	Unsupported State = "unsupported"
)

// BaseStatus is the state of every patch on one base image.
type BaseStatus struct {
	Ref    name.Reference
	States map[string]State // by patch id
	// Tag is the patched tag holding the most patches, if any.
	Tag string
	Err error
}

// Status reports, for each patch, whether ref or a patched tag made from
// ref's current digest (a tag <source tag>-pw-* in ref's repository or the
// target repository, whose base.digest annotation is ref's digest) has it.
func (p *Patcher) Status(ctx context.Context, ref name.Reference, patches []Patch) *BaseStatus {
	st := &BaseStatus{Ref: ref, States: map[string]State{}}
	fail := func(err error) *BaseStatus {
		st.Err = err
		for _, pt := range patches {
			st.States[pt.ID] = Failed
		}
		return st
	}
	info, err := p.Inspect(ctx, ref)
	if err != nil {
		return fail(err)
	}
	have := map[string]bool{}
	for _, id := range info.Patches {
		have[id] = true
	}
	if len(info.Missing(patches)) > 0 {
		best, err := p.bestPatched(ctx, ref, info)
		if err != nil {
			return fail(err)
		}
		if best != nil {
			st.Tag = best.Ref.String()
			for _, id := range best.Patches {
				have[id] = true
			}
		}
	}
	for _, pt := range patches {
		switch {
		case have[pt.ID]:
			st.States[pt.ID] = Applied
		case len(pt.Run) > 0 && p.o.runner == nil:
			st.States[pt.ID] = Unsupported
		default:
			st.States[pt.ID] = Pending
		}
	}
	return st
}

// bestPatched returns the patched image of info with the most patches, or
// nil.
func (p *Patcher) bestPatched(ctx context.Context, ref name.Reference, info *Info) (*Info, error) {
	repo := ref.Context()
	if p.o.repo != nil {
		repo = *p.o.repo
	}
	prefix := "sha256-" + info.Digest.Hex[:hashLen] + tagInfix
	if t, ok := ref.(name.Tag); ok {
		prefix = pwSuffix.ReplaceAllString(t.TagStr(), "") + tagInfix
	}
	tags, err := remote.List(repo, p.o.remoteOptions(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("listing tags of %s: %w", repo, err)
	}
	sort.Strings(tags)
	var best *Info
	for _, tag := range tags {
		if !strings.HasPrefix(tag, prefix) || !pwSuffix.MatchString(tag) {
			continue
		}
		pi, err := p.Inspect(ctx, repo.Tag(tag))
		if err != nil {
			return nil, err
		}
		if pi.Annotations[AnnotationBaseDigest] != info.Digest.String() {
			continue
		}
		if best == nil || len(pi.Patches) > len(best.Patches) {
			best = pi
		}
	}
	return best, nil
}

// Resolution is the ref a pod should run.
type Resolution struct {
	Ref name.Reference
	// Result is set when patching succeeded or was not needed.
	Result *Result
	// Reason says why Ref is the original ref despite missing patches.
	Reason error
}

// Resolve returns the ref a pod should run: ref patched with patches, or,
// if that cannot be done within timeout (registry down, conflict, RUN
// patch), ref itself with the reason. Resolve itself never fails: a pod is
// never blocked by a patch.
func (p *Patcher) Resolve(ctx context.Context, ref name.Reference, patches []Patch, timeout time.Duration) *Resolution {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var files []Patch
	var skipped []string
	for _, pt := range patches {
		if len(pt.Run) > 0 && p.o.runner == nil {
			skipped = append(skipped, pt.ID)
			continue
		}
		files = append(files, pt)
	}
	res, err := p.Patch(ctx, ref, files)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			if timeout > 0 {
				err = fmt.Errorf("patching took longer than %s: %w", timeout, err)
			} else {
				err = fmt.Errorf("patching ran out of time: %w", err)
			}
		}
		return &Resolution{Ref: ref, Reason: err}
	}
	r := &Resolution{Ref: res.Ref, Result: res}
	if len(skipped) > 0 {
		// Only a problem if the image does not have them already.
		info, err := p.Inspect(ctx, res.Ref)
		if err == nil {
			var missing []string
			for _, id := range skipped {
				if i := sort.SearchStrings(info.Patches, id); i == len(info.Patches) || info.Patches[i] != id {
					missing = append(missing, id)
				}
			}
			skipped = missing
		}
		if len(skipped) > 0 {
			r.Reason = fmt.Errorf("skipped %s: %w", strings.Join(skipped, ","), ErrRunPatch)
		}
	}
	return r
}
