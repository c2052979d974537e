package image

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

const (
	// LabelPatches lists the ids of the patches an image has, sorted and
	// comma-separated. Labels are inherited through FROM.
	LabelPatches = "dev.podwarden.patches"
	// AnnotationBaseName and AnnotationBaseDigest record the image a
	// patched image was made from (OCI image-spec annotations).
	AnnotationBaseName   = "org.opencontainers.image.base.name"
	AnnotationBaseDigest = "org.opencontainers.image.base.digest"

	tagInfix   = "-pw-"
	hashLen    = 12
	maxTagLen  = 128
	tagVersion = "podwarden-patch-tag-v1"
)

// pwSuffix matches the suffix TargetTag appends, so that patching a
// patched tag does not grow the tag.
var pwSuffix = regexp.MustCompile(`-pw-[0-9a-f]{12}$`)

// TargetTag returns the tag a patched image is pushed to:
//
//	<source tag>-pw-<hash>
//
// in repo, where <source tag> is the tag of src without an earlier
// -pw-<hash> suffix ("sha256-<12 hex>" when src is a digest), and <hash>
// is the first 12 hex digits of the SHA-256 of the source name, the source
// digest, and the id and content digest of each patch applied, sorted by
// id. Everything that goes into the patched manifest is in the hash, so a
// tag always names one digest and never has to be overwritten.
func TargetTag(repo name.Repository, src name.Reference, srcDigest v1.Hash, patches []Patch) (name.Tag, error) {
	base := "sha256-" + srcDigest.Hex[:min(hashLen, len(srcDigest.Hex))]
	if t, ok := src.(name.Tag); ok {
		base = pwSuffix.ReplaceAllString(t.TagStr(), "")
	}
	ps := append([]Patch(nil), patches...)
	sort.Slice(ps, func(i, j int) bool { return ps[i].ID < ps[j].ID })
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n", tagVersion, src.Name(), srcDigest)
	for _, p := range ps {
		fmt.Fprintf(h, "%s %s\n", p.ID, p.Digest())
	}
	suffix := tagInfix + hex.EncodeToString(h.Sum(nil))[:hashLen]
	if len(base)+len(suffix) > maxTagLen {
		base = base[:maxTagLen-len(suffix)]
	}
	t, err := name.NewTag(repo.String()+":"+base+suffix, name.StrictValidation)
	if err != nil {
		return name.Tag{}, fmt.Errorf("deriving target tag: %w", err)
	}
	return t, nil
}

// appliedPatches returns the patch ids in cfg's LabelPatches label, sorted.
func appliedPatches(cfg *v1.ConfigFile) []string {
	if cfg == nil {
		return nil
	}
	return splitIDs(cfg.Config.Labels[LabelPatches])
}

func splitIDs(s string) []string {
	var ids []string
	for _, id := range strings.Split(s, ",") {
		if id = strings.TrimSpace(id); id != "" {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return dedup(ids)
}

func dedup(sorted []string) []string {
	out := sorted[:0]
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}

func ids(ps []Patch) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}
