package cgroup

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Version is the cgroup hierarchy layout a host runs.
type Version int

const (
	// V1 has one hierarchy per controller; memory lives in <root>/memory.
	V1 Version = iota + 1
	// V2 is the unified hierarchy mounted at the root.
	V2
	// Hybrid mounts the v1 controllers (memory among them) plus an empty
	// v2 hierarchy at <root>/unified, which carries PSI but no memory
	// controller; memory files are read from the v1 side.
	Hybrid
)

func (v Version) String() string {
	switch v {
	case V1:
		return "v1"
	case V2:
		return "v2"
	case Hybrid:
		return "hybrid"
	}
	return "Version(" + strconv.Itoa(int(v)) + ")"
}

// FS reads and writes memory controller files below a cgroup mount point,
// normally /sys/fs/cgroup. The root is a value, not a global, so tests point
// it at fixture trees under testdata/.
//
// Methods take cgroup paths as printed in /proc/PID/cgroup
// ("/kubepods/pod<uid>/<id>"); on V1 and Hybrid they are paths in the memory
// hierarchy. A path with ".." components is rejected: it is what a process
// in another cgroup namespace sees, and joining it would escape the root.
//
// Errors carry the file they concern ("read /sys/fs/cgroup/x/memory.max: ...").
// A cgroup that disappears under a call (the container exited) gives an error
// wrapping fs.ErrNotExist, which callers treat as "gone" rather than failure.
// A file the kernel or hierarchy does not offer gives one wrapping
// errors.ErrUnsupported.
type FS struct {
	root    string
	version Version
}

// NewFS detects the hierarchy mounted at root.
func NewFS(root string) (FS, error) {
	switch {
	case isFile(filepath.Join(root, "cgroup.controllers")):
		return FS{root: root, version: V2}, nil
	case isFile(filepath.Join(root, "memory", "cgroup.procs")):
		// systemd's hybrid mode adds a controller-less v2 mount beside the
		// v1 controllers; memory accounting still comes from v1.
		if isFile(filepath.Join(root, "unified", "cgroup.controllers")) {
			return FS{root: root, version: Hybrid}, nil
		}
		return FS{root: root, version: V1}, nil
	}
	return FS{}, fmt.Errorf("no cgroup v2 hierarchy or v1 memory controller under %s", root)
}

// Version reports the detected hierarchy layout.
func (fs FS) Version() Version { return fs.version }

// Root is the mount point the FS was created with.
func (fs FS) Root() string { return fs.root }

// Dir is the memory controller directory for cg. It never leaves the root:
// ".." components are resolved against "/" first (the other methods reject
// them outright instead).
func (fs FS) Dir(cg string) string {
	return filepath.Join(fs.memRoot(), path.Clean("/"+cg))
}

func (fs FS) memRoot() string {
	if fs.version == V2 {
		return fs.root
	}
	return filepath.Join(fs.root, "memory")
}

// dir validates cg and returns its memory controller directory.
func (fs FS) dir(cg string) (string, error) {
	if err := checkPath(cg); err != nil {
		return "", err
	}
	return fs.Dir(cg), nil
}

func checkPath(cg string) error {
	for _, s := range strings.Split(cg, "/") {
		if s == ".." {
			// /proc/PID/cgroup shows paths relative to the reader's cgroup
			// namespace; "/../x" means the process is outside it.
			return fmt.Errorf("cgroup path %q: has \"..\" components (read from another cgroup namespace?)", cg)
		}
	}
	if strings.IndexByte(cg, 0) >= 0 {
		return fmt.Errorf("cgroup path %q: contains NUL", cg)
	}
	return nil
}

// Children lists the child cgroups of cg as cgroup paths, sorted by name.
func (fs FS) Children(cg string) ([]string, error) {
	d, err := fs.dir(cg)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(d)
	if err != nil {
		return nil, opError("list", d, err)
	}
	var kids []string
	for _, e := range ents {
		// cgroupfs has no symlinks; IsDir does not follow them, so a stray
		// link in a fixture cannot send the walk outside the tree.
		if e.IsDir() {
			kids = append(kids, path.Join("/", cg, e.Name()))
		}
	}
	return kids, nil
}

// Walk calls fn for cg and every cgroup below it, parents before children.
// A cgroup removed during the walk is skipped (fn is not called for it, or
// its children are not visited); only cg itself missing is an error. If fn
// returns fs.SkipDir the children of that cgroup are not visited; any other
// error stops the walk and is returned. ctx is checked before each cgroup.
func (fs FS) Walk(ctx context.Context, cg string, fn func(cg string) error) error {
	if err := checkPath(cg); err != nil {
		return err
	}
	err := fs.walk(ctx, path.Join("/", cg), fn)
	if err == errGone {
		return opError("list", fs.Dir(cg), syscall.ENOENT)
	}
	return err
}

// errGone tells walk's caller that a cgroup vanished before it was visited.
var errGone = errors.New("cgroup gone")

func (fs FS) walk(ctx context.Context, cg string, fn func(string) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// Listing before calling fn is what lets a vanished cgroup be skipped
	// entirely instead of handing fn a path that is already gone.
	kids, err := fs.Children(cg)
	if errors.Is(err, iofs.ErrNotExist) {
		return errGone
	}
	if err != nil {
		return err
	}
	switch err := fn(cg); {
	case err == iofs.SkipDir:
		return nil
	case err != nil:
		return err
	}
	for _, k := range kids {
		if err := fs.walk(ctx, k, fn); err != nil && err != errGone {
			return err
		}
	}
	return nil
}

// Procs lists the processes (thread-group ids) in cg, and with recursive in
// its whole subtree, parents first. Each pid appears once. A cgroup removed
// during a recursive listing is skipped.
func (fs FS) Procs(cg string, recursive bool) ([]int, error) {
	if !recursive {
		return fs.procs(cg)
	}
	var all []int
	seen := map[int]bool{}
	err := fs.Walk(context.Background(), cg, func(c string) error {
		pids, err := fs.procs(c)
		if errors.Is(err, iofs.ErrNotExist) && c != path.Join("/", cg) {
			return iofs.SkipDir
		}
		if err != nil {
			return err
		}
		for _, p := range pids {
			// v1 lists a process in every cgroup holding one of its
			// threads; count it once.
			if !seen[p] {
				seen[p] = true
				all = append(all, p)
			}
		}
		return nil
	})
	return all, err
}

func (fs FS) procs(cg string) ([]int, error) {
	b, file, err := fs.read(cg, "cgroup.procs")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		p, err := strconv.Atoi(f)
		if err != nil || p <= 0 {
			return nil, fmt.Errorf("parse %s: bad pid %q", file, f)
		}
		pids = append(pids, p)
	}
	return pids, nil
}

// read returns the contents of a file in cg's memory controller directory.
func (fs FS) read(cg, name string) ([]byte, string, error) {
	d, err := fs.dir(cg)
	if err != nil {
		return nil, "", err
	}
	file := filepath.Join(d, name)
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, file, opError("read", file, err)
	}
	return b, file, nil
}

// readOptional is read for files that not every kernel or configuration
// offers. If the file is missing but the cgroup is there, the error wraps
// errors.ErrUnsupported, so a missing feature is not mistaken for a cgroup
// that is gone.
func (fs FS) readOptional(cg, name string) ([]byte, string, error) {
	b, file, err := fs.read(cg, name)
	if errors.Is(err, iofs.ErrNotExist) && isDir(filepath.Dir(file)) {
		return nil, file, fmt.Errorf("read %s: %w", file, errors.ErrUnsupported)
	}
	return b, file, err
}

// write replaces the contents of a cgroup file. It never creates the file:
// cgroupfs refuses that anyway, and on a fixture tree creating it would hide
// a missing-feature case the real kernel reports.
func write(file, data string) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return opError("write", file, err)
	}
	_, err = f.WriteString(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return opError("write", file, err)
	}
	return nil
}

// opError wraps err as "<op> <file>: <cause>", dropping the *PathError layer
// that would repeat the file name. ENODEV is what kernfs returns for a file
// of a cgroup removed after it was opened, so it is reported as gone.
func opError(op, file string, err error) error {
	var pe *iofs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if errors.Is(err, syscall.ENODEV) {
		err = goneError{err}
	}
	if errors.Is(err, syscall.EOPNOTSUPP) {
		err = fmt.Errorf("%w (%w)", errors.ErrUnsupported, err)
	}
	return fmt.Errorf("%s %s: %w", op, file, err)
}

// goneError marks an errno that means "the cgroup was removed" without
// being ENOENT.
type goneError struct{ err error }

func (e goneError) Error() string        { return e.err.Error() + " (cgroup removed)" }
func (e goneError) Unwrap() error        { return e.err }
func (e goneError) Is(target error) bool { return target == iofs.ErrNotExist }

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
