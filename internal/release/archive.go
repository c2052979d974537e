package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"slices"
	"strings"
	"time"
)

// entry is one regular file of a release archive.
type entry struct {
	name string // slash-separated path inside the archive
	mode int64
	data []byte
}

// tarGz is a reproducible .tar.gz of files: entries sorted by name, owner
// root:root without names, every time mtime, and a gzip header without a
// file name or time, so the same files always give the same bytes (what
// SHA256SUMS and the chart's digest rely on).
func tarGz(files []entry, mtime time.Time) ([]byte, error) {
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	for i, f := range files {
		if i > 0 && files[i-1].name == f.name {
			return nil, fmt.Errorf("archive entry %q twice", f.name)
		}
		h := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     f.name,
			Mode:     f.mode,
			Size:     int64(len(f.data)),
			ModTime:  mtime.UTC().Truncate(time.Second),
			// PAX records would carry atime/ctime; USTAR has none.
			Format: tar.FormatUSTAR,
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("archiving %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("archiving %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing the tar stream: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("closing the gzip stream: %w", err)
	}
	return buf.Bytes(), nil
}
