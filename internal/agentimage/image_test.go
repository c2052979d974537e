package agentimage

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func TestImageReproducible(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "agent")
	if err := os.WriteFile(bin, []byte("\x7fELF not really"), 0o755); err != nil {
		t.Fatal(err)
	}
	meta := Meta{Version: "v0.1.0", Revision: "abc", Created: time.Unix(1700000000, 0)}
	a, err := Image(bin, meta)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(a); err != nil {
		t.Fatalf("invalid image: %v", err)
	}
	b, err := Image(bin, meta)
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Errorf("two builds of one binary differ: %s %s", da, db)
	}
	meta.Version = "v0.1.1"
	c, err := Image(bin, meta)
	if err != nil {
		t.Fatal(err)
	}
	if dc, _ := c.Digest(); dc == da {
		t.Error("a different version label gave the same digest")
	}

	mt, _ := a.MediaType()
	if mt != "application/vnd.oci.image.manifest.v1+json" {
		t.Errorf("manifest media type %s, want OCI", mt)
	}
	cf, err := a.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || cf.Config.User != "0:0" ||
		len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != "/podwarden" ||
		len(cf.Config.Cmd) != 1 || cf.Config.Cmd[0] != "agent" {
		t.Errorf("config: os=%s arch=%s user=%q entrypoint=%q cmd=%q", cf.OS, cf.Architecture, cf.Config.User, cf.Config.Entrypoint, cf.Config.Cmd)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.version":  "v0.1.0",
		"org.opencontainers.image.revision": "abc",
		"org.opencontainers.image.created":  "2023-11-14T22:13:20Z",
	} {
		if got := cf.Config.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}

	layers, err := a.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	files := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = h
	}
	h := files["podwarden"]
	if h == nil || h.Mode != 0o755 || h.Uid != 0 || !h.ModTime.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("podwarden entry: %+v", h)
	}
	if len(files) != 3 {
		t.Errorf("layer has %d entries, want podwarden, etc/, tmp/", len(files))
	}

	// The tarball loads back as the same image (its config digest, the
	// image ID: a docker tarball carries no manifest of its own).
	tb := filepath.Join(dir, "img.tar")
	if err := WriteTarball(tb, "podwarden:dev", a); err != nil {
		t.Fatal(err)
	}
	back, err := tarball.ImageFromPath(tb, nil)
	if err != nil {
		t.Fatal(err)
	}
	idBack, _ := back.ConfigName()
	id, _ := a.ConfigName()
	if idBack != id {
		t.Errorf("tarball holds image %s, built %s", idBack, id)
	}
	if err := WriteTarball(tb, "Not A Name", a); err == nil {
		t.Error("a bad image name was accepted")
	}
}

func TestImageMissingBinary(t *testing.T) {
	if _, err := Image(filepath.Join(t.TempDir(), "nope"), Meta{}); err == nil {
		t.Error("no error for a missing binary")
	}
}

func TestSourceDate(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"", 0, false},
		{"1764999999", 1764999999, false},
		{"yesterday", 0, true},
		{"1.5", 0, true},
	} {
		got, err := SourceDate(tc.in)
		if (err != nil) != tc.wantErr || err == nil && got.Unix() != tc.want {
			t.Errorf("SourceDate(%q) = %v, %v; want %d (error %v)", tc.in, got, err, tc.want, tc.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), tc.in) {
			t.Errorf("SourceDate(%q): %v does not name the input", tc.in, err)
		}
	}
}
