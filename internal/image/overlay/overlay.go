package overlay

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Type is what an upper-layer entry is.
type Type string

// Entry types.
const (
	File     Type = "file"
	Dir      Type = "dir"
	Symlink  Type = "symlink"
	Other    Type = "other"
	Whiteout Type = "whiteout" // deletes Path from the lower layers
	Opaque   Type = "opaque"   // a directory hiding the lower layers' content
)

// OCI and aufs whiteout names; overlayfs itself uses 0/0 char devices and
// the trusted.overlay.opaque (or user.overlay.opaque) xattr.
const (
	whPrefix  = ".wh."
	whOpaque  = ".wh..wh..opq"
	xattrOpq  = "trusted.overlay.opaque"
	xattrUOpq = "user.overlay.opaque"
)

// Entry is one entry of an upper layer.
type Entry struct {
	Path string // absolute, as in the container
	Type Type
	// Raw is the name as stored (e.g. "etc/.wh.motd").
	Raw string
}

// ReadDir reads the upper directory at root.
func ReadDir(root string) ([]Entry, error) {
	var out []Entry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		var t Type
		switch m := fi.Mode(); {
		case m.IsDir():
			t = Dir
			if opaqueXattr(p) {
				t = Opaque
			}
		case m.IsRegular():
			t = File
		case m&fs.ModeSymlink != 0:
			t = Symlink
		case m&fs.ModeCharDevice != 0 && rdev(fi) == 0:
			t = Whiteout
		default:
			t = Other
		}
		out = append(out, entry(rel, t))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading upper dir: %w", err)
	}
	return out, nil
}

func rdev(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Rdev)
	}
	return 1
}

func opaqueXattr(p string) bool {
	buf := make([]byte, 8)
	for _, name := range []string{xattrOpq, xattrUOpq} {
		n, err := unix.Lgetxattr(p, name, buf)
		if err == nil && n == 1 && buf[0] == 'y' {
			return true
		}
	}
	return false
}

// ReadTar reads an upper layer saved as a tar (GNU or PAX, xattrs in
// SCHILY.xattr records).
func ReadTar(r io.Reader) ([]Entry, error) {
	var out []Entry
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading upper tar: %w", err)
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if name == "" {
			continue
		}
		var t Type
		switch h.Typeflag {
		case tar.TypeDir:
			t = Dir
			if v := h.PAXRecords["SCHILY.xattr."+xattrOpq]; v == "y" {
				t = Opaque
			} else if v := h.PAXRecords["SCHILY.xattr."+xattrUOpq]; v == "y" {
				t = Opaque
			}
		case tar.TypeReg:
			t = File
		case tar.TypeSymlink, tar.TypeLink:
			t = Symlink
		case tar.TypeChar:
			t = Other
			if h.Devmajor == 0 && h.Devminor == 0 {
				t = Whiteout
			}
		default:
			t = Other
		}
		out = append(out, entry(name, t))
	}
}

// entry turns a stored name into an Entry, decoding OCI whiteouts.
func entry(rel string, t Type) Entry {
	dir, base := path.Split(rel)
	e := Entry{Path: "/" + rel, Type: t, Raw: rel}
	switch {
	case base == whOpaque:
		e.Path, e.Type = path.Clean("/"+dir), Opaque
	case strings.HasPrefix(base, whPrefix):
		e.Path, e.Type = path.Clean("/"+dir+strings.TrimPrefix(base, whPrefix)), Whiteout
	}
	return e
}

// Finding is an entry that hides a patched file.
type Finding struct {
	// File is the patched file that would be hidden.
	File  string
	Entry Entry
	// Why says how.
	Why string
}

// Hidden returns, sorted by file then entry, the entries that would hide
// one of files (absolute paths) if restored on top of them.
func Hidden(entries []Entry, files []string) []Finding {
	var out []Finding
	for _, f := range files {
		for _, e := range entries {
			if why := hides(e, f); why != "" {
				out = append(out, Finding{File: f, Entry: e, Why: why})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].File != out[j].File {
			return out[i].File < out[j].File
		}
		return out[i].Entry.Path < out[j].Entry.Path
	})
	return out
}

func hides(e Entry, file string) string {
	switch {
	case e.Path == file:
		switch e.Type {
		case Whiteout:
			return "whiteout deletes the patched file"
		case Dir, Opaque:
			return "directory replaces the patched file"
		default:
			return "the backup's own " + string(e.Type) + " replaces the patched file"
		}
	case strings.HasPrefix(file, strings.TrimSuffix(e.Path, "/")+"/"):
		switch e.Type {
		case Whiteout:
			return "whiteout deletes a parent directory"
		case Opaque:
			return "opaque directory hides the lower layers below it"
		case Dir:
			return ""
		default:
			return string(e.Type) + " stands where a parent directory should be"
		}
	}
	return ""
}

// Open reads path as an upper directory or, if it is a file, as a tar
// (gzip'd or not).
func Open(p string) ([]Entry, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("opening upper layer: %w", err)
	}
	if fi.IsDir() {
		return ReadDir(p)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("opening upper layer: %w", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("opening gzip'd upper layer: %w", err)
		}
		defer zr.Close()
		return ReadTar(zr)
	}
	return ReadTar(br)
}
