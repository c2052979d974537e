package lineage

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"go.yaml.in/yaml/v3"
)

var (
	idRE      = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$`)
	versionRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$`)
)

// parser walks the YAML tree and collects every error with its line.
type parser struct {
	file string
	errs Errors
}

func (p *parser) errorf(n *yaml.Node, field, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Path: field, Msg: fmt.Sprintf(format, args...)})
}

// fields checks that n is a mapping with only known keys and returns the
// value node of each key.
func (p *parser) fields(n *yaml.Node, at string, known ...string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, at, "must be a mapping")
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !contains(known, k.Value) {
			p.errorf(k, join(at, k.Value), "unknown field (known: %s)", strings.Join(known, ", "))
			continue
		}
		if _, dup := out[k.Value]; dup {
			p.errorf(k, join(at, k.Value), "duplicate field")
			continue
		}
		out[k.Value] = v
	}
	return out
}

func (p *parser) str(n *yaml.Node, at string) (string, bool) {
	if n == nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, at, "must be a string")
		return "", false
	}
	return n.Value, true
}

func (p *parser) required(m map[string]*yaml.Node, parent *yaml.Node, at, key string) (string, *yaml.Node) {
	n := m[key]
	if n == nil {
		p.errorf(parent, join(at, key), "required")
		return "", parent
	}
	s, ok := p.str(n, join(at, key))
	if ok && s == "" {
		p.errorf(n, join(at, key), "must not be empty")
	}
	return s, n
}

func (p *parser) document(doc *yaml.Node) *Lineage {
	l := &Lineage{}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		p.errorf(doc, "", "empty file")
		return l
	}
	root := doc.Content[0]
	m := p.fields(root, "", "schema", "families", "patches")
	if n := m["schema"]; n == nil {
		p.errorf(root, "schema", "required (schema: %d)", SchemaVersion)
	} else if v, err := strconv.Atoi(n.Value); err != nil || v != SchemaVersion {
		p.errorf(n, "schema", "unsupported schema %q, want %d", n.Value, SchemaVersion)
	}
	if n := m["families"]; n == nil {
		p.errorf(root, "families", "required")
	} else if n.Kind != yaml.MappingNode {
		p.errorf(n, "families", "must be a mapping of family name to family")
	} else {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if f := p.family(n.Content[i], n.Content[i+1]); f != nil {
				if l.Family(f.Name) != nil {
					p.errorf(n.Content[i], "families."+f.Name, "duplicate family")
					continue
				}
				l.Families = append(l.Families, f)
			}
		}
	}
	if n := m["patches"]; n != nil {
		if n.Kind != yaml.SequenceNode {
			p.errorf(n, "patches", "must be a list")
		} else {
			for i, pn := range n.Content {
				pt := p.patch(pn, fmt.Sprintf("patches[%d]", i))
				if pt == nil {
					continue
				}
				if l.Patch(pt.ID) != nil {
					p.errorf(pn, fmt.Sprintf("patches[%d].id", i), "duplicate patch id %q", pt.ID)
					continue
				}
				l.Patches = append(l.Patches, pt)
			}
		}
	}
	return l
}

func (p *parser) family(k, n *yaml.Node) *Family {
	at := "families." + k.Value
	if !versionRE.MatchString(k.Value) {
		p.errorf(k, at, "bad family name")
	}
	m := p.fields(n, at, "repository", "versions")
	f := &Family{Name: k.Value, Line: k.Line}
	repo, rn := p.required(m, n, at, "repository")
	if repo != "" {
		if _, err := name.NewRepository(repo); err != nil {
			p.errorf(rn, at+".repository", "%v", err)
		}
		f.Repository = repo
	}
	vs := m["versions"]
	if vs == nil {
		p.errorf(n, at+".versions", "required")
		return f
	}
	if vs.Kind != yaml.SequenceNode || len(vs.Content) == 0 {
		p.errorf(vs, at+".versions", "must be a non-empty list")
		return f
	}
	for i, vn := range vs.Content {
		if v := p.version(f, vn, fmt.Sprintf("%s.versions[%d]", at, i), i); v != nil {
			f.Versions = append(f.Versions, v)
		}
	}
	return f
}

func (p *parser) version(f *Family, n *yaml.Node, at string, i int) *Version {
	m := p.fields(n, at, "name", "from", "ref", "increment")
	v := &Version{Family: f, Line: n.Line}
	var nn *yaml.Node
	v.Name, nn = p.required(m, n, at, "name")
	if v.Name != "" && !versionRE.MatchString(v.Name) {
		p.errorf(nn, at+".name", "%q is not a valid tag", v.Name)
	}
	if f.Version(v.Name) != nil {
		p.errorf(nn, at+".name", "duplicate version %q", v.Name)
	}
	if fn := m["from"]; fn != nil {
		v.From, _ = p.str(fn, at+".from")
	}
	switch fn := m["from"]; {
	case i == 0 && v.From == "":
		p.errorf(n, at+".from", "required on a family's first version (the external base image)")
	case i == 0:
		if _, err := name.ParseReference(v.From); err != nil {
			p.errorf(fn, at+".from", "%v", err)
		}
	case v.From == "":
		v.Parent = f.Versions[len(f.Versions)-1]
		v.From = v.Parent.Name
	default:
		v.Parent = f.Version(v.From)
		if v.Parent == nil {
			p.errorf(fn, at+".from", "unknown version %q: must name an earlier version of family %s", v.From, f.Name)
		}
	}
	if rn := m["ref"]; rn != nil {
		v.Ref, _ = p.str(rn, at+".ref")
		if _, err := name.ParseReference(v.Ref); err != nil {
			p.errorf(rn, at+".ref", "%v", err)
		}
	} else if f.Repository != "" && v.Name != "" {
		v.Ref = f.Repository + ":" + v.Name
	}
	if in := m["increment"]; in != nil {
		if s, ok := p.str(in, at+".increment"); ok {
			v.Increment = s
			p.increment(in, at+".increment", s)
		}
	}
	return v
}

// instructions a version increment may hold. FROM is refused: the base of
// an increment is its parent version.
var instructions = map[string]bool{
	"RUN": true, "COPY": true, "ADD": true, "ENV": true, "ARG": true, "LABEL": true,
	"WORKDIR": true, "USER": true, "EXPOSE": true, "VOLUME": true, "ENTRYPOINT": true,
	"CMD": true, "SHELL": true, "STOPSIGNAL": true, "HEALTHCHECK": true, "ONBUILD": true,
}

// increment checks each Dockerfile instruction of s and reports errors at
// the instruction's own line in the file.
func (p *parser) increment(n *yaml.Node, at, s string) {
	first := n.Line
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		first++ // block scalar content starts below the indicator
	}
	cont := false
	for i, line := range strings.Split(s, "\n") {
		t := strings.TrimSpace(line)
		wasCont := cont
		cont = strings.HasSuffix(t, `\`)
		if t == "" || strings.HasPrefix(t, "#") || wasCont {
			continue
		}
		word := strings.ToUpper(strings.Fields(t)[0])
		ln := &yaml.Node{Line: first + i}
		if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
			ln.Line = n.Line
		}
		switch {
		case word == "FROM":
			p.errorf(ln, at, "FROM is not allowed in an increment: the base is the previous version")
		case !instructions[word]:
			p.errorf(ln, at, "unknown Dockerfile instruction %q", strings.Fields(t)[0])
		}
	}
	if cont {
		p.errorf(n, at, "ends with a line continuation")
	}
}

func (p *parser) patch(n *yaml.Node, at string) *Patch {
	m := p.fields(n, at, "id", "description", "files", "run")
	pt := &Patch{Line: n.Line}
	var idn *yaml.Node
	pt.ID, idn = p.required(m, n, at, "id")
	if pt.ID != "" && !idRE.MatchString(pt.ID) {
		p.errorf(idn, at+".id", "%q must be lower-case letters, digits, '.' and '-' (at most 63)", pt.ID)
	}
	if pt.ID != "" {
		at = "patches." + pt.ID
	}
	if dn := m["description"]; dn != nil {
		pt.Description, _ = p.str(dn, at+".description")
	}
	fs, rs := m["files"], m["run"]
	switch {
	case fs == nil && rs == nil:
		p.errorf(n, at, "needs files or run")
	case fs != nil && rs != nil:
		p.errorf(rs, at+".run", "a patch has either files or run, not both")
	case fs != nil:
		if fs.Kind != yaml.SequenceNode || len(fs.Content) == 0 {
			p.errorf(fs, at+".files", "must be a non-empty list")
			break
		}
		seen := map[string]bool{}
		for i, fn := range fs.Content {
			f := p.fileEntry(fn, fmt.Sprintf("%s.files[%d]", at, i))
			if f.Path != "" && seen[f.Path] {
				p.errorf(fn, fmt.Sprintf("%s.files[%d].path", at, i), "duplicate path %s", f.Path)
			}
			seen[f.Path] = true
			pt.Files = append(pt.Files, f)
		}
	default:
		if rs.Kind != yaml.SequenceNode || len(rs.Content) == 0 {
			p.errorf(rs, at+".run", "must be a non-empty list of shell commands")
			break
		}
		for i, c := range rs.Content {
			if s, ok := p.str(c, fmt.Sprintf("%s.run[%d]", at, i)); ok {
				if strings.TrimSpace(s) == "" {
					p.errorf(c, fmt.Sprintf("%s.run[%d]", at, i), "empty command")
				}
				pt.Run = append(pt.Run, s)
			}
		}
	}
	return pt
}

func (p *parser) fileEntry(n *yaml.Node, at string) File {
	m := p.fields(n, at, "path", "mode", "uid", "gid", "content", "source")
	f := File{Mode: 0o644, Line: n.Line}
	var pn *yaml.Node
	f.Path, pn = p.required(m, n, at, "path")
	if f.Path != "" && (!path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/") {
		p.errorf(pn, at+".path", "%q must be an absolute, clean file path", f.Path)
	}
	if mn := m["mode"]; mn != nil {
		s := strings.TrimPrefix(strings.TrimPrefix(mn.Value, "0o"), "0")
		mode, err := strconv.ParseInt(s, 8, 32)
		if s == "" {
			mode, err = 0, nil
		}
		if mn.Kind != yaml.ScalarNode || err != nil || mode > 0o7777 {
			p.errorf(mn, at+".mode", "%q is not an octal file mode like \"0755\"", mn.Value)
		}
		f.Mode = mode
	}
	f.UID = p.id(m["uid"], at+".uid")
	f.GID = p.id(m["gid"], at+".gid")
	cn, sn := m["content"], m["source"]
	switch {
	case cn == nil && sn == nil:
		p.errorf(n, at, "needs content or source")
	case cn != nil && sn != nil:
		p.errorf(sn, at+".source", "content and source are exclusive")
	case cn != nil:
		if s, ok := p.str(cn, at+".content"); ok {
			f.Content = []byte(s)
		}
	default:
		if s, ok := p.str(sn, at+".source"); ok {
			if err := checkSourcePath(s); err != nil {
				p.errorf(sn, at+".source", "%v", err)
			}
			f.Source, f.SourceLine = s, sn.Line
		}
	}
	return f
}

func (p *parser) id(n *yaml.Node, at string) int {
	if n == nil {
		return 0
	}
	v, err := strconv.Atoi(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil || v < 0 || v > 1<<31-1 {
		p.errorf(n, at, "%q is not a numeric id", n.Value)
		return 0
	}
	return v
}

func join(at, key string) string {
	if at == "" {
		return key
	}
	return at + "." + key
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
