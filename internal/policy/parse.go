package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Error is one problem in a config file. Parse returns all of them joined
// (errors.Join), one per line, so a user fixes a file in one go.
type Error struct {
	Name  string // file name as given to Parse
	Line  int    // 1-based; 0 when the problem has no single line
	Field string // dotted path, e.g. "protected[1].adj"; "" for the document
	Msg   string
}

func (e *Error) Error() string {
	loc := e.Name
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if e.Field == "" {
		return loc + ": " + e.Msg
	}
	return loc + ": " + e.Field + ": " + e.Msg
}

// MaxFileSize bounds a policy file. A real policy is a few KiB; the YAML
// node tree costs about fifty times the text, so an unbounded file (10 MB
// cost 507 MB of RSS) could make the agent the node's first OOM victim.
const MaxFileSize = 1 << 20

// Load reads and parses the config file at path.
func Load(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading policy: %w", err)
	}
	defer f.Close()
	return Parse(f, path)
}

// Parse reads a YAML config of at most MaxFileSize bytes. Keys not given
// keep their Default value; a key given as an empty list or map (or null)
// replaces the default with nothing, so "excludeNamespaces: []" really
// excludes no namespace. Unknown keys are errors: a misspelt
// "excludeNamespace" must not quietly target kube-system.
func Parse(r io.Reader, name string) (Config, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return Config{}, fmt.Errorf("reading policy %s: %w", name, err)
	}
	if len(b) > MaxFileSize {
		return Config{}, &Error{Name: name, Msg: fmt.Sprintf("larger than the limit of %d bytes (1 MiB) for a policy file", MaxFileSize)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return Default(), nil
		}
		return Config{}, yamlError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return Config{}, yamlError(name, err)
		}
		return Config{}, &Error{Name: name, Line: line, Msg: "more than one YAML document; put the whole policy in one"}
	}
	p := parser{name: name}
	cfg := Default()
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if !isNull(root) {
		p.config(root, &cfg)
	}
	if len(p.errs) > 0 {
		// Cross-field checks run after the walk; sort so the output reads
		// top to bottom like the file.
		slices.SortStableFunc(p.errs, func(a, b error) int { return a.(*Error).Line - b.(*Error).Line })
		return Config{}, errors.Join(p.errs...)
	}
	return cfg, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError turns the YAML library's "yaml: line N: msg" into our format.
func yamlError(name string, err error) error {
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{Name: name, Line: line, Msg: "invalid YAML: " + m[2]}
	}
	return &Error{Name: name, Msg: "invalid YAML: " + err.Error()}
}

type parser struct {
	name string
	errs []error // all *Error
}

func (p *parser) fail(n *yaml.Node, field, format string, args ...any) {
	p.errs = append(p.errs, &Error{Name: p.name, Line: n.Line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) check(n *yaml.Node, field string, err error) {
	if err != nil {
		p.fail(n, field, "%v", err)
	}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// mapping walks a mapping node, rejecting duplicate and unknown keys, and
// calls fn for each known key with its value node.
func (p *parser) mapping(n *yaml.Node, field string, known []string, fn func(key string, v *yaml.Node)) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		p.fail(n, field, "must be a mapping")
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		kf := join(field, k.Value)
		if k.Kind != yaml.ScalarNode {
			p.fail(k, field, "keys must be plain strings")
			continue
		}
		if line, dup := seen[k.Value]; dup {
			p.fail(k, kf, "duplicate key (first at line %d)", line)
			continue
		}
		seen[k.Value] = k.Line
		if known != nil && !slices.Contains(known, k.Value) {
			p.fail(k, kf, "unknown key (known: %s)", strings.Join(known, ", "))
			continue
		}
		fn(k.Value, v)
	}
}

func (p *parser) config(n *yaml.Node, c *Config) {
	known := []string{"selector", "oomGroup", "podOOMScoreAdj", "annotationMinAdj", "protected", "interval", "cgroupSelector", "preempt"}
	p.mapping(n, "", known, func(key string, v *yaml.Node) {
		switch key {
		case "selector":
			p.selector(v, &c.Selector)
		case "oomGroup":
			if s, ok := p.str(v, key); ok {
				m, err := ParseMode(s)
				p.check(v, key, err)
				c.OOMGroup = m
			}
		case "podOOMScoreAdj":
			p.adj(v, key, &c.PodOOMScoreAdj)
		case "annotationMinAdj":
			p.adj(v, key, &c.AnnotationMinAdj)
		case "protected":
			c.Protected = p.protected(v)
		case "interval":
			if s, ok := p.str(v, key); ok {
				d, err := time.ParseDuration(s)
				if err != nil {
					p.fail(v, key, "%q is not a duration like 10s or 1m", s)
					return
				}
				p.check(v, key, CheckInterval(d))
				c.Interval = d
			}
		case "cgroupSelector":
			// "" is meaningful here: use the CRI runtime, not a glob.
			if v.Kind == yaml.ScalarNode && v.Value == "" {
				c.CgroupSelector = ""
				return
			}
			if s, ok := p.str(v, key); ok {
				p.check(v, key, checkCgroupSelector(s))
				c.CgroupSelector = s
			}
		case "preempt":
			p.preempt(v, &c.Preempt)
		}
	})
}

func (p *parser) selector(n *yaml.Node, s *Selector) {
	known := []string{"labels", "namespaces", "excludeNamespaces", "excludeLabels"}
	var inclNodes []*yaml.Node
	p.mapping(n, "selector", known, func(key string, v *yaml.Node) {
		f := "selector." + key
		switch key {
		case "labels":
			s.Labels = p.labels(v, f)
		case "excludeLabels":
			s.ExcludeLabels = p.labels(v, f)
		case "namespaces":
			s.Namespaces, inclNodes = p.namespaces(v, f)
		case "excludeNamespaces":
			s.ExcludeNamespaces, _ = p.namespaces(v, f)
		}
	})
	// Point at the included entry: the exclusion may be the default one,
	// which has no line.
	for i, ns := range s.Namespaces {
		if slices.Contains(s.ExcludeNamespaces, ns) && i < len(inclNodes) {
			p.fail(inclNodes[i], fmt.Sprintf("selector.namespaces[%d]", i),
				"namespace %q is also in selector.excludeNamespaces (default [kube-system]); it would never be selected", ns)
		}
	}
}

func (p *parser) labels(n *yaml.Node, field string) map[string]string {
	out := map[string]string{}
	p.mapping(n, field, nil, func(key string, v *yaml.Node) {
		if isNull(v) {
			p.fail(v, field, "label %s: value required (use \"*\" for any value)", key)
			return
		}
		val, ok := p.str(v, join(field, key))
		if !ok {
			return
		}
		p.check(v, field, checkLabel(key, val))
		out[key] = val
	})
	return out
}

func (p *parser) namespaces(n *yaml.Node, field string) ([]string, []*yaml.Node) {
	out := []string{}
	var nodes []*yaml.Node
	if isNull(n) {
		return out, nil
	}
	if n.Kind != yaml.SequenceNode {
		p.fail(n, field, "must be a list of namespace names")
		return out, nil
	}
	for i, item := range n.Content {
		f := fmt.Sprintf("%s[%d]", field, i)
		s, ok := p.str(item, f)
		if !ok {
			continue
		}
		p.check(item, f, checkNamespace(s))
		out = append(out, s)
		nodes = append(nodes, item)
	}
	return out, nodes
}

func (p *parser) protected(n *yaml.Node) []ProtectedRule {
	out := []ProtectedRule{}
	if isNull(n) {
		return out
	}
	if n.Kind != yaml.SequenceNode {
		p.fail(n, "protected", "must be a list of rules")
		return out
	}
	known := []string{"comm", "exe", "cgroup", "adj"}
	for i, item := range n.Content {
		f := fmt.Sprintf("protected[%d]", i)
		r := ProtectedRule{Adj: DefaultProtectedAdj}
		if item.Kind != yaml.MappingNode {
			// A bare "-" or a scalar: mapping() would skip a null silently.
			p.fail(item, f, "must be a mapping with comm, exe, cgroup and/or adj")
			continue
		}
		p.mapping(item, f, known, func(key string, v *yaml.Node) {
			kf := f + "." + key
			switch key {
			case "comm":
				if s, ok := p.str(v, kf); ok {
					p.check(v, kf, checkComm(s))
					r.Comm = s
				}
			case "exe":
				if s, ok := p.str(v, kf); ok {
					p.check(v, kf, checkExe(s))
					r.Exe = s
				}
			case "cgroup":
				if s, ok := p.str(v, kf); ok {
					p.check(v, kf, checkGlob(s))
					r.Cgroup = s
				}
			case "adj":
				p.adj(v, kf, &r.Adj)
			}
		})
		p.check(item, f, checkRule(r))
		out = append(out, r)
	}
	return out
}

// str accepts any non-null scalar: YAML reads "comm: 1234" as an int, but
// a process may well be called 1234.
func (p *parser) str(n *yaml.Node, field string) (string, bool) {
	if isNull(n) {
		p.fail(n, field, "value required")
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		p.fail(n, field, "must be a single value")
		return "", false
	}
	if n.Value == "" {
		p.fail(n, field, "must not be empty")
		return "", false
	}
	return n.Value, true
}

func (p *parser) adj(n *yaml.Node, field string, dst *int) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		p.fail(n, field, "must be an integer in -1000..1000, got %q", n.Value)
		return
	}
	var v int
	if err := n.Decode(&v); err != nil {
		p.fail(n, field, "must be an integer in -1000..1000, got %q", n.Value)
		return
	}
	if err := checkAdj(v); err != nil {
		p.check(n, field, err)
		return
	}
	*dst = v
}

func (p *parser) duration(n *yaml.Node, field string, check func(time.Duration) error, dst *time.Duration) {
	s, ok := p.str(n, field)
	if !ok {
		return
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.fail(n, field, "%q is not a duration like 10s or 1m", s)
		return
	}
	if err := check(d); err != nil {
		p.check(n, field, err)
		return
	}
	*dst = d
}

func (p *parser) boolean(n *yaml.Node, field string, dst *bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		p.fail(n, field, "must be true or false, got %q", n.Value)
		return
	}
	_ = n.Decode(dst)
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}
