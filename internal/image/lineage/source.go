package lineage

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// MaxSourceSize bounds one source file: a patch layer is built in memory,
// and a patch is a few scripts or configs, not a payload.
const MaxSourceSize = 64 << 20

// maxLineageSize bounds the lineage file itself.
const maxLineageSize = 16 << 20

// readSource reads the source rel (slash-separated, relative) of a file
// patch from root, the lineage file's directory. Whoever can write into
// that directory must not be able to make a patch push a file from
// elsewhere on the host: every component of rel must be a real directory
// and the last a regular file, with no symbolic link anywhere, even one
// that stays inside. The checks are Lstat calls, so they see links instead
// of following them; the read goes through os.Root, which cannot leave
// root even if a component is swapped for a link after the check, and is
// of the very file that was checked (os.SameFile), so a swap between check
// and read is refused, not read.
func readSource(root *os.Root, rel string) ([]byte, error) {
	if err := checkSourcePath(rel); err != nil {
		return nil, err
	}
	clean := path.Clean(rel)
	elems := strings.Split(clean, "/")
	for i := 1; i < len(elems); i++ {
		dir := strings.Join(elems[:i], "/")
		fi, err := root.Lstat(dir)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", rel, unwrapPath(err))
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			return nil, fmt.Errorf("%q: %q is a symbolic link: sources and their directories must not be links", rel, dir)
		case !fi.IsDir():
			return nil, fmt.Errorf("%q: %q is not a directory", rel, dir)
		}
	}
	fi, err := root.Lstat(clean)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", rel, unwrapPath(err))
	}
	if err := regular(rel, fi); err != nil {
		return nil, err
	}
	if fi.Size() > MaxSourceSize {
		return nil, fmt.Errorf("%q is %d bytes, more than the %d a source may have", rel, fi.Size(), MaxSourceSize)
	}
	// openFlags keeps a FIFO swapped in after the check from blocking
	// the open until a writer comes.
	f, err := root.OpenFile(clean, os.O_RDONLY|openFlags, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %q: %w", rel, unwrapPath(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading %q: %w", rel, err)
	}
	if !os.SameFile(fi, st) {
		return nil, fmt.Errorf("%q changed while being read (replaced by a link or another file?)", rel)
	}
	if err := regular(rel, st); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxSourceSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %q: %w", rel, err)
	}
	if len(b) > MaxSourceSize {
		return nil, fmt.Errorf("%q grew past the %d bytes a source may have", rel, MaxSourceSize)
	}
	return b, nil
}

func regular(rel string, fi fs.FileInfo) error {
	switch m := fi.Mode(); {
	case m&fs.ModeSymlink != 0:
		return fmt.Errorf("%q is a symbolic link: a source must be a regular file inside the lineage file's directory", rel)
	case m.IsDir():
		return fmt.Errorf("%q is a directory: a source must be a regular file", rel)
	case !m.IsRegular():
		return fmt.Errorf("%q is not a regular file (%s)", rel, m.Type())
	}
	return nil
}

// checkSourcePath refuses what the parser refuses: an absolute path, or
// one with a ".." element anywhere. The kernel resolves a/../b through a
// even if a is a link, while a lexical Clean drops a: refusing ".." keeps
// the two from disagreeing.
func checkSourcePath(s string) error {
	if s == "" || path.IsAbs(s) || strings.HasPrefix(path.Clean(s), "..") {
		return fmt.Errorf("%q must be a path relative to the lineage file, inside its directory", s)
	}
	for _, e := range strings.Split(s, "/") {
		if e == ".." {
			return fmt.Errorf("%q must not contain \"..\"", s)
		}
	}
	return nil
}

// unwrapPath drops the *fs.PathError around err: its path is the one
// inside the root, which the caller names already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
