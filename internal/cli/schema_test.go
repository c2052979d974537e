package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"
)

// schemaDir holds the JSON Schemas of every document the commands print.
const schemaDir = "../../docs/schemas"

// compileSchema compiles docs/schemas/name, asserting formats (date-time).
func compileSchema(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	sch, err := c.Compile(filepath.Join(schemaDir, name))
	if err != nil {
		t.Fatalf("compiling %s: %v", name, err)
	}
	return sch
}

// validate checks one JSON document against sch.
func validate(t *testing.T, sch *jsonschema.Schema, what string, doc []byte) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("%s: not JSON: %v\n%s", what, err, doc)
	}
	if err := sch.Validate(v); err != nil {
		t.Errorf("%s: does not match its schema: %v\n%s", what, err, doc)
	}
}

// validateOutput validates what a command printed as -o json or -o yaml.
func validateOutput(t *testing.T, sch *jsonschema.Schema, what, format, out string) {
	t.Helper()
	doc := []byte(out)
	if format == "yaml" {
		var err error
		if doc, err = yaml.YAMLToJSON(doc); err != nil {
			t.Fatalf("%s: not YAML: %v\n%s", what, err, out)
		}
	}
	validate(t, sch, what, doc)
}

// TestSchemasPsVictims runs ps and victims on the seed node (every
// process kind: host daemons, kernel threads, pods of each QoS, a group
// kill) and validates what they print, empty lists too.
func TestSchemasPsVictims(t *testing.T) {
	proc, cg := seedRoots(t)
	node := []string{"--proc-root", proc, "--cgroup-root", cg, "--pod-log-dir", podLogDir(proc)}
	// A limit on the seed container, for the prediction in a cgroup.
	container := "/kubepods/pod" + seedPodUID + "/crio-" + seedContainerID
	if err := os.WriteFile(filepath.Join(cg, container, "memory.max"), []byte("8589934592\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		schema string
		args   []string
	}{
		"ps":                  {"ps.schema.json", []string{"ps", "--kernel-threads"}},
		"ps unnamed pods":     {"ps.schema.json", []string{"ps", "--pod-log-dir", ""}},
		"ps empty":            {"ps.schema.json", []string{"ps", "--pod", "nope"}},
		"victims":             {"victims.schema.json", []string{"victims", "--limit", "0"}},
		"victims empty":       {"victims.schema.json", []string{"victims", "-n", "nope"}},
		"victims in a cgroup": {"victims.schema.json", []string{"victims", "--cgroup", container}},
	}
	for name, tc := range tests {
		sch := compileSchema(t, tc.schema)
		for _, format := range []string{"json", "yaml"} {
			t.Run(name+"/"+format, func(t *testing.T) {
				args := append(append(append([]string{}, tc.args[0]), node...), tc.args[1:]...)
				out, errOut, code := runForTest(t, append(args, "-o", format)...)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errOut)
				}
				validateOutput(t, sch, strings.Join(args, " "), format, out)
			})
		}
	}
}

// TestSchemaVersion validates `version -o json`, its companions not
// found (the test binary has none beside it).
func TestSchemaVersion(t *testing.T) {
	out, errOut, code := runForTest(t, "version", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	validate(t, compileSchema(t, "version.schema.json"), "version -o json", []byte(out))
}

// TestSchemaEvents validates every line `events -o json` prints for every
// kernel log fixture (each kernel, carrier and quirk), with pods named and
// not.
func TestSchemaEvents(t *testing.T) {
	sch := compileSchema(t, "events.schema.json")
	logs, _ := filepath.Glob("../../internal/oomreport/testdata/*.log")
	kmsgs, _ := filepath.Glob("../../internal/oomreport/testdata/*.kmsg")
	files := append(logs, kmsgs...)
	if len(files) < 30 {
		t.Fatalf("only %d fixtures found", len(files))
	}
	pods := t.TempDir()
	for _, uid := range []string{"6f1c2b4a-1d2e-4f5a-9b8c-7d6e5f4a3b2c", "7c9e6679-7425-40de-944b-e07fc1f90ae7"} {
		if err := os.Mkdir(filepath.Join(pods, "ml_train-7_"+uid), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	lines := 0
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			out, errOut, code := runForTest(t, "events", "--file", f, "-o", "json", "--pod-log-dir", pods)
			if code != 0 && code != eventsExitUnassembled {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for i, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
				if l != "" {
					lines++
					validate(t, sch, fmt.Sprintf("%s event %d", f, i+1), []byte(l))
				}
			}
		})
	}
	if lines < len(files) {
		t.Errorf("%d events from %d fixtures", lines, len(files))
	}
}

// TestSchemasRefuse checks that the schemas hold what the issue asked:
// documents without a version, with unknowns as zeros or empty strings,
// fail.
func TestSchemasRefuse(t *testing.T) {
	tests := map[string]struct {
		schema, doc string
	}{
		"events without a version": {"events.schema.json",
			`{"scope":"cgroup","victims":[],"diagnosis":{"codes":[],"summary":""},"incomplete":false}`},
		"events zero invoker": {"events.schema.json",
			`{"apiVersion":"podwarden.dev/v1","kind":"OOMEvent","scope":"cgroup","invoker":{},"victims":[],"diagnosis":{"codes":[],"summary":""},"incomplete":false}`},
		"events zero monotonic": {"events.schema.json",
			`{"apiVersion":"podwarden.dev/v1","kind":"OOMEvent","monotonic_s":0,"scope":"cgroup","victims":[],"diagnosis":{"codes":[],"summary":""},"incomplete":false}`},
		"events empty pod uid": {"events.schema.json",
			`{"apiVersion":"podwarden.dev/v1","kind":"OOMEvent","scope":"node","pod_uid":"","victims":[],"diagnosis":{"codes":[],"summary":""},"incomplete":false}`},
		"events old kind key": {"events.schema.json",
			`{"apiVersion":"podwarden.dev/v1","kind":"cgroup","scope":"cgroup","victims":[],"diagnosis":{"codes":[],"summary":""},"incomplete":false}`},
		"ps bare list":         {"ps.schema.json", `[]`},
		"ps empty container":   {"ps.schema.json", `{"apiVersion":"podwarden.dev/v1","kind":"ProcessList","items":[{"pid":1,"ppid":0,"comm":"init","cmdline":[],"state":"S","uid":0,"threads":1,"oom_score":0,"oom_score_adj":0,"rss_bytes":0,"rss_anon_bytes":0,"rss_file_bytes":0,"rss_shmem_bytes":0,"swap_bytes":0,"pgtables_bytes":0,"cgroup":"/","container_id":""}]}`},
		"victims without kind": {"victims.schema.json", `{"apiVersion":"podwarden.dev/v1","domain":"node","total_pages":1,"victims":[],"verdict":{"problem":false,"text":""},"next":""}`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v, err := jsonschema.UnmarshalJSON(strings.NewReader(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			if compileSchema(t, tc.schema).Validate(v) == nil {
				t.Errorf("%s accepted %s", tc.schema, tc.doc)
			}
		})
	}
}
