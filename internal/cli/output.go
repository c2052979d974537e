package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"podwarden/internal/termsafe"
)

// apiVersion names the schema of every JSON and YAML document the node
// commands print (docs/schemas/), beside a kind per document type, as
// Kubernetes objects carry them: a script can check what it reads and a
// later incompatible change gets a new version.
const apiVersion = "podwarden.dev/v1"

// TypeMeta is the apiVersion and kind every document starts with.
type TypeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// Meta is the TypeMeta of kind in this version.
func Meta(kind string) TypeMeta { return TypeMeta{APIVersion: apiVersion, Kind: kind} }

// WriteStructured writes v as format "json" (indented) or "yaml". Both use
// the JSON field names, the public interface of every command's output.
// Strings are the true ones; what a terminal would act on and JSON leaves
// raw (C1 controls, bidi marks) is written as \u escapes (termsafe.JSON).
func WriteStructured(w io.Writer, format string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding output: %w", err)
	}
	var out bytes.Buffer
	if format == "yaml" {
		if err := jsonToYAML(&out, b); err != nil {
			return err
		}
	} else {
		if err := json.Indent(&out, b, "", "  "); err != nil {
			return err
		}
		out.WriteByte('\n')
	}
	_, err = w.Write(termsafe.JSON(out.Bytes()))
	return err
}

// jsonToYAML converts a JSON document to block-style YAML, keeping the
// key order. The node binary does not link a YAML library for this: JSON
// scalars are valid YAML once strings are quoted where YAML would read
// them as something else.
func jsonToYAML(w io.Writer, doc []byte) error {
	var v any
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return fmt.Errorf("encoding output: %w", err)
	}
	// Objects decode to maps, which lose the order: walk the tokens for it.
	keys, err := keyOrder(doc)
	if err != nil {
		return fmt.Errorf("encoding output: %w", err)
	}
	bw := bufio.NewWriter(w)
	emitYAML(bw, v, keys)
	return bw.Flush()
}

// keyOrder lists each object's keys in document order, objects numbered
// in the order they open (the order emitYAML visits them).
func keyOrder(doc []byte) ([][]string, error) {
	d := json.NewDecoder(bytes.NewReader(doc))
	var order [][]string
	type frame struct {
		obj     int // index into order, -1 for arrays
		wantKey bool
	}
	var stack []frame
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return order, nil
		}
		if err != nil {
			return nil, err
		}
		top := len(stack) - 1
		isKey := top >= 0 && stack[top].obj >= 0 && stack[top].wantKey
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				if top >= 0 && stack[top].obj >= 0 {
					stack[top].wantKey = true
				}
				order = append(order, nil)
				stack = append(stack, frame{obj: len(order) - 1, wantKey: true})
			case '[':
				if top >= 0 && stack[top].obj >= 0 {
					stack[top].wantKey = true
				}
				stack = append(stack, frame{obj: -1})
			default:
				stack = stack[:top]
			}
		default:
			if isKey {
				s, _ := t.(string)
				order[stack[top].obj] = append(order[stack[top].obj], s)
				stack[top].wantKey = false
			} else if top >= 0 && stack[top].obj >= 0 {
				stack[top].wantKey = true
			}
		}
	}
}

// yamlEmitter writes block YAML; next is the next object's index in keys.
type yamlEmitter struct {
	w    *bufio.Writer
	keys [][]string
	next int
}

func emitYAML(w *bufio.Writer, v any, keys [][]string) {
	e := &yamlEmitter{w: w, keys: keys}
	if e.block(v, "", "") {
		return
	}
	w.WriteString(yamlScalar(v) + "\n")
}

// block writes a non-empty object or array whose first line starts with
// first and the others with indent, and reports whether v was one.
func (e *yamlEmitter) block(v any, indent, first string) bool {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			e.next++
			return false
		}
		order := e.keys[e.next]
		e.next++
		for i, k := range order {
			p := indent
			if i == 0 {
				p = first
			}
			e.w.WriteString(p + yamlString(k) + ":")
			e.value(x[k], indent+"  ")
		}
		return true
	case []any:
		if len(x) == 0 {
			return false
		}
		for i, el := range x {
			p := indent
			if i == 0 {
				p = first
			}
			if !e.block(el, indent+"  ", p+"- ") {
				e.w.WriteString(p + "- " + yamlScalar(el) + "\n")
			}
		}
		return true
	}
	return false
}

// value writes v after "key:": a scalar on the same line, a block below.
func (e *yamlEmitter) value(v any, indent string) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			e.next++ // its (empty) slot in keys
			break
		}
		e.w.WriteString("\n")
		e.block(v, indent, indent)
		return
	case []any:
		if len(x) > 0 {
			e.w.WriteString("\n")
			e.block(v, indent, indent)
			return
		}
	}
	e.w.WriteString(" " + yamlScalar(v) + "\n")
}

func yamlScalar(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "{}"
	case []any:
		return "[]"
	case bool:
		if x {
			return "true"
		}
		return "false"
	case json.Number:
		return x.String()
	case string:
		return yamlString(x)
	}
	return yamlString(fmt.Sprint(v))
}

var plainYAML = regexp.MustCompile(`^[A-Za-z_/][A-Za-z0-9_./+-]*$`)

// yamlReserved are words YAML 1.1 or 1.2 parsers read as booleans or null.
var yamlReserved = []string{"y", "yes", "n", "no", "true", "false", "on", "off", "null"}

// yamlString writes s plain when no YAML parser could read it as anything
// but that string, else as a double-quoted scalar (JSON's string syntax is
// a subset of YAML's double-quoted style).
func yamlString(s string) string {
	if plainYAML.MatchString(s) && !slices.Contains(yamlReserved, strings.ToLower(s)) {
		return s
	}
	b, _ := json.Marshal(s)
	return string(b)
}
