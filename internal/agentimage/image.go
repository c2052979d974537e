package agentimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BinaryPath is where the agent binary sits in the image.
const BinaryPath = "/podwarden"

// Meta is what the image says about itself, in OCI labels.
type Meta struct {
	Version  string    // org.opencontainers.image.version, e.g. v0.1.0 or dev
	Revision string    // org.opencontainers.image.revision (git commit), may be empty
	Created  time.Time // file times and config.created; the zero value means the Unix epoch
	Arch     string    // GOARCH of the binary (config.architecture); "" means amd64
}

// Image packs the static agent binary at binPath into the release image.
// Only the binary and its metadata decide the digest.
func Image(binPath string, meta Meta) (v1.Image, error) {
	bin, err := os.ReadFile(binPath)
	if err != nil {
		return nil, fmt.Errorf("reading the agent binary: %w", err)
	}
	created := meta.Created
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	created = created.UTC()
	layerTar, err := layerTar(bin, created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("building the layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	// plainLayer hides the tarball layer's Descriptor, whose empty
	// annotations map would make the manifest differ from its own JSON.
	img, err = mutate.AppendLayers(img, plainLayer{layer})
	if err != nil {
		return nil, fmt.Errorf("adding the layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", meta.Arch
	if cf.Architecture == "" {
		cf.Architecture = "amd64"
	}
	cf.Created = v1.Time{Time: created}
	cf.History = []v1.History{{
		Created:   v1.Time{Time: created},
		CreatedBy: "podwarden internal/agentimage: COPY podwarden-agent " + BinaryPath,
	}}
	cf.Config.Entrypoint = []string{BinaryPath}
	cf.Config.Cmd = []string{"agent"}
	// uid 0: the cgroup files the agent writes are root-owned and the
	// chart's capabilities only apply to a root process (docs/kubernetes.md).
	cf.Config.User = "0:0"
	cf.Config.WorkingDir = "/"
	cf.Config.Labels = Labels(meta, created)
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("writing the config: %w", err)
	}
	return img, nil
}

// Labels are the image's OCI labels.
func Labels(meta Meta, created time.Time) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":       "podwarden",
		"org.opencontainers.image.description": "podwarden node agent: keeps pods from taking Kubernetes nodes down in OOMs",
		"org.opencontainers.image.version":     meta.Version,
		"org.opencontainers.image.created":     created.UTC().Format(time.RFC3339),
		"org.opencontainers.image.base.name":   "scratch",
	}
	if meta.Revision != "" {
		l["org.opencontainers.image.revision"] = meta.Revision
	}
	return l
}

// layerTar is the image's only layer: the binary and the two empty
// directories a process expects (/tmp for Go's os.TempDir users, /etc).
// Fixed owner, modes and times make it byte-for-byte reproducible.
func layerTar(bin []byte, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdrs := []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755},
		{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777},
		{Typeflag: tar.TypeReg, Name: BinaryPath[1:], Mode: 0o755, Size: int64(len(bin))},
	}
	for _, h := range hdrs {
		h.ModTime, h.Format = mtime.Truncate(time.Second), tar.FormatUSTAR
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("writing the layer: %w", err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(bin); err != nil {
				return nil, fmt.Errorf("writing the layer: %w", err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("writing the layer: %w", err)
	}
	return buf.Bytes(), nil
}

// WriteTarball writes img as a `docker load` / `ctr images import` tarball
// tagged ref (e.g. podwarden:dev).
func WriteTarball(path, ref string, img v1.Image) error {
	tag, err := parseTag(ref)
	if err != nil {
		return err
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

type plainLayer struct{ v1.Layer }
