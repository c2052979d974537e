package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Patch is a backport: files to add to an image, or RUN steps.
type Patch struct {
	ID          string
	Description string
	Files       []File
	// Run holds shell commands. RUN patches are applied by a Runner
	// (BuildKit); without one Patcher.Patch fails with ErrRunPatch.
	Run []string
}

// File is one file a patch writes.
type File struct {
	Path    string // absolute, clean
	Mode    int64  // permission bits, e.g. 0o755
	UID     int
	GID     int
	Content []byte
}

// ErrRunPatch is returned when a missing patch has RUN steps and the
// Patcher has no Runner.
var ErrRunPatch = errors.New("RUN patches need BuildKit: no runner configured (podwarden-build helper); only file patches can be applied")

// epoch is the modification time of every file in a patch layer.
var epoch = time.Unix(0, 0).UTC()

// Digest identifies the patch's content: id, files and commands. Two
// patches with the same id and different content have different digests.
func (p Patch) Digest() string {
	h := sha256.New()
	fmt.Fprintf(h, "id %q\n", p.ID)
	for _, f := range p.Files {
		c := sha256.Sum256(f.Content)
		fmt.Fprintf(h, "file %q %o %d %d %x\n", f.Path, f.Mode, f.UID, f.GID, c)
	}
	for _, r := range p.Run {
		fmt.Fprintf(h, "run %q\n", r)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

func (p Patch) validate() error {
	if p.ID == "" || strings.ContainsAny(p.ID, ", \t\n") {
		return fmt.Errorf("bad patch id %q", p.ID)
	}
	if len(p.Run) > 0 && len(p.Files) > 0 {
		return fmt.Errorf("patch %s has both files and RUN steps", p.ID)
	}
	if len(p.Run) > 0 {
		return nil
	}
	if len(p.Files) == 0 {
		return fmt.Errorf("patch %s has no files", p.ID)
	}
	for _, f := range p.Files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" {
			return fmt.Errorf("patch %s: file path %q is not absolute and clean", p.ID, f.Path)
		}
		if f.Mode < 0 || f.Mode > 0o7777 || f.UID < 0 || f.GID < 0 {
			return fmt.Errorf("patch %s: file %s: bad mode or owner", p.ID, f.Path)
		}
	}
	return nil
}

// LayerTar writes the uncompressed, reproducible tar of patches: regular
// files only, sorted by path, fixed times, numeric owners and no user or
// group names. When patches write the same path the later one wins.
// Parent directories are not written, so the base's directory modes and
// owners stay as they are.
func LayerTar(w io.Writer, patches []Patch) error {
	files := map[string]File{}
	for _, p := range patches {
		if err := p.validate(); err != nil {
			return err
		}
		if len(p.Run) > 0 {
			return fmt.Errorf("patch %s: RUN patches cannot be a file layer", p.ID)
		}
		for _, f := range p.Files {
			files[f.Path] = f
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	tw := tar.NewWriter(w)
	for _, n := range names {
		f := files[n]
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     strings.TrimPrefix(n, "/"),
			Mode:     f.Mode,
			Uid:      f.UID,
			Gid:      f.GID,
			Size:     int64(len(f.Content)),
			ModTime:  epoch,
			Format:   tar.FormatPAX,
		}
		if len(hdr.Name) < 100 {
			hdr.Format = tar.FormatUSTAR
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("writing tar header for %s: %w", n, err)
		}
		if _, err := tw.Write(f.Content); err != nil {
			return fmt.Errorf("writing %s: %w", n, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("closing tar: %w", err)
	}
	return nil
}

// NewLayer returns patches as one reproducible gzip layer of media type
// mt: the same patches give the same digest every time.
func NewLayer(patches []Patch, mt types.MediaType) (v1.Layer, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, fmt.Errorf("creating gzip writer: %w", err)
	}
	// Zero header: no name, no mtime, OS "unknown".
	if err := LayerTar(zw, patches); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compressing layer: %w", err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(mt))
	if err != nil {
		return nil, fmt.Errorf("creating layer: %w", err)
	}
	return l, nil
}
