package cli

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestYAMLMatchesJSON checks the hand-written emitter against a real YAML
// parser: the YAML must decode to what the JSON decodes to.
func TestYAMLMatchesJSON(t *testing.T) {
	type inner struct {
		A string         `json:"a"`
		B []int          `json:"b"`
		M map[string]any `json:"m"`
	}
	docs := []any{
		map[string]any{"z": 1, "a": "x"},
		[]inner{{A: "yes", B: []int{1, 2}, M: map[string]any{}}, {A: "", B: nil, M: map[string]any{"k": []any{}}}},
		struct {
			S  []string `json:"s"`
			N  *int     `json:"n"`
			F  float64  `json:"f"`
			Q  string   `json:"q"`
			E  []any    `json:"e"`
			Nn [][]int  `json:"nn"`
		}{S: []string{"on", "Off", "null", "1.5", "-3", "a: b", "#c", "x\ny", "kubepods/pod-1", "é", "~"}, F: 2.5e-7, Q: `"quoted"`, E: []any{}, Nn: [][]int{{1}, {2, 3}}},
		"just a string: here",
		[]any{map[string]any{}, []any{}, nil, true},
	}
	for i, d := range docs {
		var out bytes.Buffer
		if err := WriteStructured(&out, "yaml", d); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(d)
		var want any
		if err := yaml.Unmarshal(b, &want); err != nil { // JSON is YAML
			t.Fatal(err)
		}
		var got any
		if err := yaml.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("doc %d: invalid YAML: %v\n%s", i, err, out.String())
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("doc %d:\n%s\ndecodes to %#v\nwant %#v", i, out.String(), got, want)
		}
	}
	var out bytes.Buffer
	_ = WriteStructured(&out, "yaml", struct {
		Z int `json:"z"`
		A int `json:"a"`
	}{1, 2})
	if !strings.HasPrefix(out.String(), "z: 1\na: 2\n") {
		t.Errorf("key order lost:\n%s", out.String())
	}
}
