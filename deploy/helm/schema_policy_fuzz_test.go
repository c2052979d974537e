package helm_test

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"

	"podwarden/internal/policy"
)

// The schema's patterns restate the agent's parsers (policy.ParseLevel,
// time.ParseDuration and the range checks, path.Match). These tests hold
// them to the agent over many strings: whatever the schema lets through
// the agent must load (sound), and the spellings people write that the
// agent loads the schema must let through (complete on those). The schema
// is stricter on purpose only where a pattern cannot follow: exotic
// number forms (1e1%, +5%, 0x1p3), sizes under 0.01 of their unit or of a
// million TiB and more, durations with repeated or out-of-order units.
// testdata/schema_patterns.py writes the long patterns (thresholds,
// durations); the glob, label and path ones are written by hand.

// schemaKey is one policy key whose values the schema checks with a
// pattern, and how to put a value for it in a policy the agent parses.
type schemaKey struct {
	name string
	loc  string                     // JSON pointer into values.schema.json
	doc  func(v any) map[string]any // the policy with the value at the key
}

// thresholdDoc puts v at one threshold, the other two set where they
// cannot make the agent refuse v (critical off, or below any min; release
// above any min) so only the key's own range is compared; the order of
// the three is the agent's check, not the pattern's.
func thresholdDoc(key string) func(v any) map[string]any {
	th := map[string]any{"minAvailable": "4000000Ti", "criticalAvailable": "0", "releaseAvailable": "90%"}
	if key == "releaseAvailable" {
		th["minAvailable"] = "0.001K" // one byte
	}
	return func(v any) map[string]any {
		th := mapsClone(th)
		th[key] = v
		return map[string]any{"preempt": map[string]any{"node": th}}
	}
}

func mapsClone(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

var (
	policyProps  = "/properties/policy/properties/"
	preemptProps = policyProps + "preempt/properties/"
	thresholdKey = []schemaKey{
		{"minAvailable", "/definitions/thresholds/properties/minAvailable", thresholdDoc("minAvailable")},
		{"criticalAvailable", "/definitions/thresholds/properties/criticalAvailable", thresholdDoc("criticalAvailable")},
		{"releaseAvailable", "/definitions/thresholds/properties/releaseAvailable", thresholdDoc("releaseAvailable")},
	}
	durationKeys = []schemaKey{
		{"interval", policyProps + "interval", func(v any) map[string]any { return map[string]any{"interval": v} }},
		{"cooldown", preemptProps + "cooldown", func(v any) map[string]any { return preemptDoc("cooldown", v) }},
		{"growthWindow", preemptProps + "growthWindow", func(v any) map[string]any { return preemptDoc("growthWindow", v) }},
		{"grace", preemptProps + "ladder/items/properties/grace", func(v any) map[string]any {
			return preemptDoc("ladder", []any{map[string]any{"signal": "SIGKILL", "grace": v}})
		}},
	}
	pressureKey = schemaKey{"pressure", preemptProps + "pressure", func(v any) map[string]any { return preemptDoc("pressure", v) }}
	globKeys    = []schemaKey{
		{"cgroup", policyProps + "protected/items/properties/cgroup", func(v any) map[string]any {
			return map[string]any{"protected": []any{map[string]any{"cgroup": v}}}
		}},
		{"keep", preemptProps + "keep/items", func(v any) map[string]any { return preemptDoc("keep", []any{v}) }},
	}
)

func preemptDoc(key string, v any) map[string]any {
	return map[string]any{"preempt": map[string]any{key: v}}
}

// compiled is values.schema.json compiled as Helm compiles it
// (chartutil.ValidateAgainstSingleSchema: the same library and resource
// name), so a location in it can be checked alone.
type compiled struct {
	c *jsonschema.Compiler
}

func compileValuesSchema(t testing.TB) compiled {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("reading values.schema.json: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("file:///values.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	return compiled{c}
}

func (c compiled) at(t testing.TB, loc string) *jsonschema.Schema {
	t.Helper()
	s, err := c.c.Compile("file:///values.schema.json#" + loc)
	if err != nil {
		t.Fatalf("compiling %s: %v", loc, err)
	}
	return s
}

// agentLoads renders the policy as the chart's toYaml does and parses it
// as the agent does.
func agentLoads(doc map[string]any) error {
	b, err := yaml.Marshal(doc)
	if err != nil {
		return fmt.Errorf("marshalling %v: %w", doc, err)
	}
	_, err = policy.Parse(bytes.NewReader(b), "policy.yaml")
	return err
}

// compare checks one value at one key: never accepted by the schema and
// refused by the agent; when mustAccept, accepted by both or neither.
func compare(t testing.TB, s *jsonschema.Schema, k schemaKey, v any, mustAccept bool) (schemaOK bool) {
	t.Helper()
	serr := s.Validate(v)
	aerr := agentLoads(k.doc(v))
	if serr == nil && aerr != nil {
		t.Errorf("%s=%#v: the schema accepts it, the agent refuses it: %v", k.name, v, aerr)
	}
	if mustAccept && serr != nil && aerr == nil {
		// The schema's message repeats the whole pattern; the value says it.
		t.Errorf("%s=%#v: the agent accepts it, the schema refuses it", k.name, v)
	}
	return serr == nil
}

// TestSchemaPolicyPatternsMatchAgent runs the generators below over each
// key: sound on every string, complete on the common spellings.
func TestSchemaPolicyPatternsMatchAgent(t *testing.T) {
	c := compileValuesSchema(t)
	rng := rand.New(rand.NewPCG(22, 3))
	const n = 4000
	run := func(k schemaKey, common, hostile func(*rand.Rand) string) {
		t.Run(k.name, func(t *testing.T) {
			s := c.at(t, k.loc)
			var ok, refused int
			for range n {
				if compare(t, s, k, common(rng), true) {
					ok++
				} else {
					refused++
				}
				compare(t, s, k, hostile(rng), false)
			}
			// Both sides of the range must be exercised, or the test proves nothing.
			if ok < n/20 || refused < n/20 {
				t.Errorf("common spellings: %d accepted, %d refused of %d; the generator misses one side", ok, refused, n)
			}
		})
	}
	for _, k := range thresholdKey {
		run(k, commonLevel, anyLevel)
		t.Run(k.name+"/numbers", func(t *testing.T) {
			s := c.at(t, k.loc)
			for range n {
				compare(t, s, k, float64(rng.IntN(240)-20)/2, true)
				compare(t, s, k, rng.IntN(120)-10, true)
			}
			for _, v := range []any{1e300, -1e300, 1e-300, 0.0, math.Copysign(0, -1), 50.000000001, 90.0000001} {
				compare(t, s, k, v, true)
			}
		})
	}
	for _, k := range durationKeys {
		run(k, commonDuration, anyDuration)
	}
	run(pressureKey, commonPressure, func(r *rand.Rand) string {
		return pick(r, "some ", "full ", "", "some  ", "partial ") + anyDuration(r) + pick(r, " ", "\t", "  ", "") + anyDuration(r)
	})
	for _, k := range globKeys {
		run(k, commonGlob, anyGlob)
	}
}

func pick(r *rand.Rand, s ...string) string { return s[r.IntN(len(s))] }

// number is a decimal as people write it: 1 to 4 digits, sometimes a
// fraction, now and then a leading zero.
func number(r *rand.Rand) string {
	s := fmt.Sprint(r.IntN([]int{10, 100, 1000, 10000}[r.IntN(4)]))
	if r.IntN(3) == 0 {
		s += "." + fmt.Sprint(r.IntN(100))
	}
	if r.IntN(20) == 0 {
		s = "0" + s
	}
	return s
}

var sizeUnits = []string{"K", "M", "G", "T", "Ki", "Mi", "Gi", "Ti", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB"}

func commonLevel(r *rand.Rand) string {
	pct := number(r) + pick(r, "%", "%", "")
	size := number(r) + pick(r, sizeUnits...)
	sep := pick(r, " ", ",", ", ", "  ")
	switch r.IntN(4) {
	case 0:
		return pct
	case 1:
		return size
	case 2:
		return pct + sep + size
	}
	return size + sep + pct
}

// anyLevel is hostile: the pieces of a level in any order and number,
// with stray signs, exponents, units, separators and bytes.
func anyLevel(r *rand.Rand) string {
	pieces := []string{"0", "1", "5", "9", "50", "90", "100", ".", "%", "%%", "e", "E", "+", "-", "x", "p", "_",
		"K", "M", "G", "T", "P", "i", "B", "b", " ", ",", "\t", "\n", "\u00a0", "Inf", "NaN", "ki", "1e3", "0x1p3"}
	var b strings.Builder
	for range 1 + r.IntN(8) {
		b.WriteString(pick(r, pieces...))
	}
	return b.String()
}

var durationUnits = []string{"ns", "us", "\u00b5s", "ms", "s", "m", "h"}

func commonDuration(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		// Go's own spelling, as time.Duration.String writes it.
		return fmt.Sprintf("%dm%ds", 1+r.IntN(90), r.IntN(60))
	}
	return number(r) + pick(r, durationUnits...)
}

// commonPressure is a trigger as docs/policy.md writes them: a stall of
// at most 500ms or of whole seconds, a window in ms or whole seconds, some
// of either outside the kernel's bounds. The schema takes a stall above
// 500ms only up to a whole second the window reaches (1.5s in 1.7s is
// refused; the agent loads it).
func commonPressure(r *rand.Rand) string {
	stall := pick(r, fmt.Sprintf("%dms", r.IntN(501)), fmt.Sprintf("%ds", r.IntN(12)), fmt.Sprintf("%dus", r.IntN(500001)))
	window := pick(r, fmt.Sprintf("%dms", 400+r.IntN(10000)), fmt.Sprintf("%ds", r.IntN(12)), fmt.Sprintf("%d.5s", r.IntN(11)))
	return pick(r, "some ", "full ") + stall + " " + window
}

func anyDuration(r *rand.Rand) string {
	pieces := append([]string{"0", "1", "5", "10", "24", "59", "60", "100", "500", "3600", ".", "+", "-", "e3", " ", "d", "1h", "1m", "1s"}, durationUnits...)
	var b strings.Builder
	for range 1 + r.IntN(6) {
		b.WriteString(pick(r, pieces...))
	}
	return b.String()
}

func commonGlob(r *rand.Rand) string {
	return pick(r, "/", "") + pick(r, "python*", "jupyter-?ab", "[jJ]upyter", "[a-z]*", "[^.]*", "kubepods*", "**", "a\\*b",
		"[a-", "[", "x[]", "[-a]", "a\\", "[z-a]", "[a-b-c]", "[\\]]", "[]a]")
}

func anyGlob(r *rand.Rand) string {
	pieces := []string{"a", "*", "?", "[", "]", "^", "-", "\\", "/", "**", "z", "."}
	var b strings.Builder
	for range 1 + r.IntN(8) {
		b.WriteString(pick(r, pieces...))
	}
	return b.String()
}

// FuzzSchemaLevel: the thresholds pattern never lets through what the
// agent refuses. Seeds are the hostile forms of issue 22.
func FuzzSchemaLevel(f *testing.F) {
	for _, s := range []string{"150%", "-1%", "10% 2GiB 3", "abc", "0", "10% 2GiB", "4%, 1Gi", "99999999999999999999Ki", "0.001Ki", "1e1%", "\t5%\t"} {
		f.Add(s)
	}
	c := compileValuesSchema(f)
	schemas := make([]*jsonschema.Schema, len(thresholdKey))
	for i, k := range thresholdKey {
		schemas[i] = c.at(f, k.loc)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for i, k := range thresholdKey {
			compare(t, schemas[i], k, s, false)
		}
	})
}

// FuzzSchemaDuration: likewise for the duration keys and the PSI trigger.
func FuzzSchemaDuration(f *testing.F) {
	for _, s := range []string{"10s", "1m30s", "99ms", "24h0m1s", "1h", "0", "-1s", "some 100ms 1s", "full 2s 1s"} {
		f.Add(s)
	}
	c := compileValuesSchema(f)
	keys := append(append([]schemaKey{}, durationKeys...), pressureKey)
	schemas := make([]*jsonschema.Schema, len(keys))
	for i, k := range keys {
		schemas[i] = c.at(f, k.loc)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for i, k := range keys {
			compare(t, schemas[i], k, s, false)
		}
	})
}

// FuzzSchemaGlob: likewise for the cgroup and keep globs.
func FuzzSchemaGlob(f *testing.F) {
	for _, s := range []string{"[ssh", "[^]", "a\\", "/kubepods/**", "[a-]", "jupyter-[lab", "[]a]", "python*"} {
		f.Add(s)
	}
	c := compileValuesSchema(f)
	schemas := make([]*jsonschema.Schema, len(globKeys))
	for i, k := range globKeys {
		schemas[i] = c.at(f, k.loc)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for i, k := range globKeys {
			compare(t, schemas[i], k, s, false)
		}
	})
}
