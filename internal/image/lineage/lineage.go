package lineage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// SchemaVersion is the only lineage file schema this package reads.
const SchemaVersion = 1

// Lineage is a parsed and validated lineage file.
type Lineage struct {
	// Families in file order.
	Families []*Family
	// Patches in file order: when two patches write the same path, the
	// later one wins.
	Patches []*Patch
}

// Family is a line of base images, each version built from an earlier one.
type Family struct {
	Name string
	// Repository is where the versions are published, e.g.
	// registry.example.com/pods/base.
	Repository string
	Versions   []*Version
	Line       int
}

// Version is one published base image.
type Version struct {
	Name string
	// From is the external base image of a family's first version, or the
	// name of an earlier version of the same family.
	From string
	// Parent is the version From names, nil for an external base.
	Parent *Version
	// Ref is the published image reference (default Repository:Name).
	Ref string
	// Increment holds the Dockerfile instructions that turn From into this
	// version, without a FROM line.
	Increment string
	Family    *Family
	Line      int
}

// Patch is a backport every known base image must receive.
type Patch struct {
	ID          string
	Description string
	// Files replace or add files (a file patch). Exactly one of Files and
	// Run is set.
	Files []File
	// Run holds shell commands (a RUN patch, executed by BuildKit).
	Run  []string
	Line int
}

// File is one file written by a patch.
type File struct {
	Path string
	Mode int64
	UID  int
	GID  int
	// Content is the file's content. Parse leaves it nil when Source is
	// set; Load reads Source relative to the lineage file.
	Content []byte
	Source  string
	Line    int
	// SourceLine is the line of the source field, where Load reports a
	// source it refuses.
	SourceLine int
}

// Family returns the family called name, or nil.
func (l *Lineage) Family(name string) *Family {
	for _, f := range l.Families {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// Version returns the version called name, or nil.
func (f *Family) Version(name string) *Version {
	for _, v := range f.Versions {
		if v.Name == name {
			return v
		}
	}
	return nil
}

// Patch returns the patch with id, or nil.
func (l *Lineage) Patch(id string) *Patch {
	for _, p := range l.Patches {
		if p.ID == id {
			return p
		}
	}
	return nil
}

// Refs returns the published ref of every version of every family: the
// known bases that must receive every patch.
func (l *Lineage) Refs() []string {
	var refs []string
	for _, f := range l.Families {
		for _, v := range f.Versions {
			refs = append(refs, v.Ref)
		}
	}
	return refs
}

// Chain returns the versions from the family's root to v, root first.
func (v *Version) Chain() []*Version {
	var chain []*Version
	for c := v; c != nil; c = c.Parent {
		chain = append(chain, c)
	}
	for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
		chain[i], chain[j] = chain[j], chain[i]
	}
	return chain
}

// Error is one problem in a lineage file, at a line.
type Error struct {
	File string
	Line int
	// Path names the field, e.g. families.base.versions[2].from.
	Path string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:", e.Line)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrInvalid is wrapped by every error Parse returns for a bad file.
var ErrInvalid = errors.New("invalid lineage file")

// Errors is every problem found in a file, in line order.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (es Errors) Is(target error) bool { return target == ErrInvalid }

// Load reads, parses and validates the lineage file at path, and reads
// each file patch's source relative to the file's directory. A source
// must be a regular file below that directory, reached without any
// symbolic link (see readSource); the directory itself may be reached
// through links, as a ConfigMap volume's ..data is.
func Load(path string) (*Lineage, error) {
	b, err := readBounded(path, maxLineageSize)
	if err != nil {
		return nil, fmt.Errorf("reading lineage file: %w", err)
	}
	name := filepath.Base(path)
	l, err := Parse(bytes.NewReader(b), name)
	if err != nil {
		return nil, err
	}
	var root *os.Root
	var errs Errors
	for _, p := range l.Patches {
		for i := range p.Files {
			f := &p.Files[i]
			if f.Source == "" {
				continue
			}
			if root == nil {
				if root, err = os.OpenRoot(filepath.Dir(path)); err != nil {
					return nil, fmt.Errorf("opening the lineage file's directory: %w", err)
				}
				defer root.Close()
			}
			c, err := readSource(root, f.Source)
			if err != nil {
				errs = append(errs, &Error{File: name, Line: f.SourceLine,
					Path: fmt.Sprintf("patches.%s.files[%d].source", p.ID, i), Msg: err.Error()})
				continue
			}
			f.Content = c
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return l, nil
}

// readBounded reads the file at path, failing if it is over limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// Parse reads and validates a lineage file. name is used in errors.
// Sources of file patches are not read; see Load.
func Parse(r io.Reader, name string) (*Lineage, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading lineage file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, Errors{yamlError(name, err)}
	}
	p := &parser{file: name}
	l := p.document(&doc)
	if len(p.errs) > 0 {
		sort.SliceStable(p.errs, func(i, j int) bool { return p.errs[i].Line < p.errs[j].Line })
		return nil, p.errs
	}
	return l, nil
}

// yamlError turns a yaml.v3 error ("yaml: line 3: ...") into an Error.
func yamlError(file string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if n, _ := fmt.Sscanf(msg, "line %d:", &line); n == 1 {
		msg = strings.TrimSpace(msg[strings.Index(msg, ":")+1:])
	}
	return &Error{File: file, Line: line, Msg: msg}
}
