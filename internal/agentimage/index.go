package agentimage

import (
	"fmt"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Index is the multi-platform image: one entry per image, in the order
// given, each with the platform its config names, so containerd on an
// arm64 node pulls the arm64 image from the same reference and digest.
func Index(imgs ...v1.Image) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	seen := map[string]bool{}
	for _, img := range imgs {
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("reading an image config for the index: %w", err)
		}
		p := cf.Platform()
		if p == nil || p.OS == "" || p.Architecture == "" {
			return nil, fmt.Errorf("image config without os/architecture: %+v", p)
		}
		if seen[p.String()] {
			// Two entries for one platform: a runtime would pick either.
			return nil, fmt.Errorf("two images for %s in one index", p)
		}
		seen[p.String()] = true
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}},
		})
	}
	return idx, nil
}

// WriteLayout writes idx as an OCI image layout in dir (which must not
// exist yet): its index.json is idx itself, so the layout's digest is the
// digest a registry serves after `crane push dir REF` or `skopeo copy
// oci:dir docker://REF`.
func WriteLayout(dir string, idx v1.ImageIndex) error {
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("writing the image layout: %s already exists", dir)
	}
	if _, err := layout.Write(dir, idx); err != nil {
		return fmt.Errorf("writing the image layout %s: %w", dir, err)
	}
	return nil
}
