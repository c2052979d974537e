package agentimage

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// TestIndex: the release index has one image per platform with the
// platform in its descriptor (what a runtime matches on), and the OCI
// layout on disk reads back as the same index, digest for digest.
func TestIndex(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "agent")
	if err := os.WriteFile(bin, []byte("\x7fELF not really"), 0o755); err != nil {
		t.Fatal(err)
	}
	meta := Meta{Version: "v0.2.0", Created: time.Unix(1700000000, 0)}
	amd, err := Image(bin, meta)
	if err != nil {
		t.Fatal(err)
	}
	meta.Arch = "arm64"
	arm, err := Image(bin, meta)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := Index(amd, arm)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatalf("invalid index: %v", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != "application/vnd.oci.image.index.v1+json" || len(im.Manifests) != 2 {
		t.Fatalf("index %s with %d manifests", im.MediaType, len(im.Manifests))
	}
	for i, want := range []string{"linux/amd64", "linux/arm64"} {
		d := im.Manifests[i]
		if d.Platform == nil || d.Platform.String() != want {
			t.Errorf("manifest %d platform %v, want %s", i, d.Platform, want)
			continue
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		if cf.Platform().String() != want {
			t.Errorf("%s entry's config says %s", want, cf.Platform())
		}
	}

	again, _ := Index(amd, arm)
	d1, _ := idx.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("two indexes of the same images differ: %s %s", d1, d2)
	}

	out := filepath.Join(dir, "layout")
	if err := WriteLayout(out, idx); err != nil {
		t.Fatal(err)
	}
	back, err := layout.ImageIndexFromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	if db, _ := back.Digest(); db != d1 {
		t.Errorf("layout index.json is %s, built %s", db, d1)
	}
	if err := validate.Index(back); err != nil {
		t.Errorf("layout does not validate: %v", err)
	}
	if err := WriteLayout(out, idx); err == nil {
		t.Error("writing over an existing layout was accepted")
	}

	if _, err := Index(amd, amd); err == nil {
		t.Error("two images for linux/amd64 in one index were accepted")
	}
}
