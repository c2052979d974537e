package policy

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "update golden files")

// TestParseErrorsGolden parses every testdata/errors/*.yaml and compares
// the full error text, one "file:LINE: field: problem" per line, with its
// .golden file. Run with -update after an intended change.
func TestParseErrorsGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/errors/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range files {
		t.Run(filepath.Base(in), func(t *testing.T) {
			_, err := Load(in)
			if err == nil {
				t.Fatal("Load accepted a bad config")
			}
			got := []byte(err.Error() + "\n")
			golden := strings.TrimSuffix(in, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden (run with -update): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("errors differ from %s\n--- got\n%s--- want\n%s", golden, got, want)
			}
			// Every problem must carry the file name and a line.
			for _, line := range strings.Split(strings.TrimSpace(string(got)), "\n") {
				if !strings.HasPrefix(line, in+":") {
					t.Errorf("line without location: %q", line)
				}
			}
		})
	}
}

func TestParseErrorType(t *testing.T) {
	_, err := Parse(strings.NewReader("interval: 1ms\n"), "p.yaml")
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("err %v is not a *Error", err)
	}
	if pe.Name != "p.yaml" || pe.Line != 1 || pe.Field != "interval" {
		t.Errorf("Error = %+v", pe)
	}
}

func TestParseValid(t *testing.T) {
	mod := func(f func(*Config)) Config {
		c := Default()
		f(&c)
		return c
	}
	tests := map[string]struct {
		in   string
		want Config
	}{
		"empty file":    {"", Default()},
		"only comments": {"# nothing\n", Default()},
		"empty mapping": {"{}\n", Default()},
		"null document": {"~\n", Default()},
		"null selector": {"selector:\n", Default()},
		"explicit defaults": {
			"selector:\n  excludeNamespaces: [kube-system]\noomGroup: single\npodOOMScoreAdj: 900\ninterval: 10s\n",
			Default(),
		},
		"override scalars": {
			"oomGroup: group\npodOOMScoreAdj: -5\nannotationMinAdj: -100\ninterval: 1m30s\ncgroupSelector: 'kubepods*/**/*pod[0-9a-f]*/*'\n",
			mod(func(c *Config) {
				c.OOMGroup, c.PodOOMScoreAdj, c.AnnotationMinAdj = ModeGroup, -5, -100
				c.Interval, c.CgroupSelector = 90*time.Second, "kubepods*/**/*pod[0-9a-f]*/*"
			}),
		},
		"hex adj is still an integer": {"podOOMScoreAdj: 0x10\n", mod(func(c *Config) { c.PodOOMScoreAdj = 16 })},
		"empty exclusions replace default": {
			"selector:\n  excludeNamespaces: []\n",
			mod(func(c *Config) { c.Selector.ExcludeNamespaces = []string{} }),
		},
		"null exclusions mean none": {
			"selector:\n  excludeNamespaces:\n",
			mod(func(c *Config) { c.Selector.ExcludeNamespaces = []string{} }),
		},
		"selector": {
			"selector:\n  labels: {app: latch-pods, team: '*'}\n  namespaces: [hub, ml]\n  excludeLabels:\n    podwarden.io/skip: \"true\"\n",
			mod(func(c *Config) {
				c.Selector.Labels = map[string]string{"app": "latch-pods", "team": "*"}
				c.Selector.Namespaces = []string{"hub", "ml"}
				c.Selector.ExcludeLabels = map[string]string{"podwarden.io/skip": "true"}
			}),
		},
		"unquoted bool label value": {
			"selector:\n  excludeLabels: {skip: true}\n",
			mod(func(c *Config) { c.Selector.ExcludeLabels = map[string]string{"skip": "true"} }),
		},
		"protected replaces defaults, adj defaults to -900": {
			"protected:\n  - comm: sshd\n  - exe: /usr/bin/node_exporter\n    adj: -500\n  - cgroup: /system.slice/chronyd.service\n    comm: chronyd\n",
			mod(func(c *Config) {
				c.Protected = []ProtectedRule{
					{Comm: "sshd", Adj: -900},
					{Exe: "/usr/bin/node_exporter", Adj: -500},
					{Comm: "chronyd", Cgroup: "/system.slice/chronyd.service", Adj: -900},
				}
			}),
		},
		"numeric comm":  {"protected:\n  - comm: 1234\n", mod(func(c *Config) { c.Protected = []ProtectedRule{{Comm: "1234", Adj: -900}} })},
		"no protection": {"protected: []\n", mod(func(c *Config) { c.Protected = []ProtectedRule{} })},
		"preempt, every key": {
			"preempt:\n  enabled: true\n  dryRun: true\n  pressure: full 50ms 500ms\n" +
				"  node: {minAvailable: 8%, criticalAvailable: 0, releaseAvailable: 12.5%}\n" +
				"  container: {minAvailable: 3}\n" +
				"  ladder:\n    - signal: SIGTERM\n      grace: 5s\n    - signal: SIGKILL\n" +
				"  mrelease: false\n  cooldown: 1m\n  growthWindow: 10s\n  keepInit: false\n" +
				"  keep: [code-server, 'rstudio*']\n  messageFile: /tmp/podwarden-oom.txt\n",
			mod(func(c *Config) {
				c.Preempt = Preempt{
					Enabled: true, DryRun: true,
					Pressure:  PSITrigger{Full: true, Stall: 50 * time.Millisecond, Window: 500 * time.Millisecond},
					Node:      Thresholds{MinAvailable: 8, ReleaseAvailable: 12.5},
					Container: Thresholds{MinAvailable: 3, CriticalAvailable: 2, CriticalAvailableBytes: 96 << 20, ReleaseAvailable: 10, ReleaseAvailableBytes: 512 << 20},
					Ladder:    []Step{{"SIGTERM", 5 * time.Second}, {"SIGKILL", 0}},
					Cooldown:  time.Minute, GrowthWindow: 10 * time.Second,
					Keep: []string{"code-server", "rstudio*"}, MessageFile: "/tmp/podwarden-oom.txt",
				}
			}),
		},
		"preempt, only enabled": {"preempt:\n  enabled: true\n", mod(func(c *Config) { c.Preempt.Enabled = true })},
		"preempt, keep nothing": {"preempt:\n  keep: []\n", mod(func(c *Config) { c.Preempt.Keep = []string{} })},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tc.in), "p.yaml")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse =\n%+v\nwant\n%+v", got, tc.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("parsed config fails Validate: %v", err)
			}
		})
	}
}

// The example shipped for operators must load and mean what its comments
// say.
func TestExampleConfig(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "deploy", "examples", "policy.yaml"))
	if err != nil {
		t.Fatalf("deploy/examples/policy.yaml: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	d := c.Decide(Target{Namespace: "hub", Labels: map[string]string{"app": "latch-pods"}})
	if !d.Target || d.OOMGroup != ModeSingle || d.Adj != 900 {
		t.Errorf("example decision = %+v", d)
	}
	if d := c.Decide(Target{Namespace: "monitoring", Labels: map[string]string{"app": "latch-pods"}}); d.Target {
		t.Errorf("monitoring selected: %+v", d)
	}
	if adj, ok := c.ProtectHost("systemd-network", "/usr/lib/systemd/systemd-networkd", "/system.slice/systemd-networkd.service"); !ok || adj != -900 {
		t.Errorf("networkd: %d, %v", adj, ok)
	}
	if adj, ok := c.ProtectHost("rngd", "/usr/sbin/rngd", "/system.slice/rngd.service"); !ok || adj != -800 {
		t.Errorf("rngd: %d, %v", adj, ok)
	}
}

func TestValidatePreempt(t *testing.T) {
	c := Default()
	c.Preempt.Ladder = nil
	c.Preempt.Node.ReleaseAvailable = 5
	err := c.Validate()
	for _, want := range []string{"preempt.ladder: has 0 steps", "preempt.node.releaseAvailable: 5% must be above minAvailable 10%"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to say %q", err, want)
		}
	}
	if err := Default().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestParsePSITrigger(t *testing.T) {
	for in, want := range map[string]string{
		"some 100ms 1s":    "some 100ms 1s",
		"full 150ms 2s":    "full 150ms 2s",
		"some 1ms 10s":     "some 1ms 10s",
		"some 2s 1s":       "error: stall 2s must be positive and at most the window 1s",
		"some 0s 1s":       "error: stall 0s must be positive",
		"some 100ms 499ms": "error: window 499ms is outside 500ms..10s",
		"avg 100ms 1s":     "error: want \"some|full STALL WINDOW\"",
		"some 100 1s":      "error: stall \"100\" is not a duration",
		"some 100ms":       "error: want",
	} {
		got, err := ParsePSITrigger(in)
		switch {
		case strings.HasPrefix(want, "error: "):
			if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(want, "error: ")) {
				t.Errorf("%q: %v, want error %q", in, err, want)
			}
		case err != nil || got.String() != want:
			t.Errorf("%q: %v, %v; want %s", in, got, err, want)
		}
	}
	if s := (PSITrigger{Stall: 100 * time.Millisecond, Window: time.Second}).Share(); s != 0.1 {
		t.Errorf("Share = %v", s)
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "reading policy") || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, pat := range []string{"testdata/errors/*.yaml", "../../deploy/examples/policy.yaml"} {
		files, _ := filepath.Glob(pat)
		for _, name := range files {
			b, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte("selector: {labels: {a: b}}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(bytes.NewReader(b), "f.yaml")
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "f.yaml") {
					t.Fatalf("error line without file name: %q", line)
				}
			}
			return
		}
		// Whatever Parse accepts is a valid config.
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted %q but Validate says %v", b, err)
		}
	})
}

// Durations are bounded at load: an interval so long that three of them
// overflow (the agent's liveness bound) is refused, as is one that does
// not parse as a duration at all.
func TestParseIntervalBounds(t *testing.T) {
	for in, want := range map[string]string{
		"interval: 1000000h\n": "longer than the maximum 24h0m0s",
		"interval: 25h\n":      "longer than the maximum 24h0m0s",
		"interval: 99ms\n":     "shorter than the minimum 100ms",
		"interval: -5s\n":      "shorter than the minimum 100ms",
		"interval: 9999999h\n": "is not a duration",
		"interval: 0s\n":       "shorter than the minimum 100ms",
	} {
		_, err := Parse(strings.NewReader(in), "p.yaml")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "interval") {
			t.Errorf("%q: got %v, want an error naming interval and %q", in, err, want)
		}
	}
	for _, in := range []string{"interval: 24h\n", "interval: 100ms\n"} {
		if _, err := Parse(strings.NewReader(in), "p.yaml"); err != nil {
			t.Errorf("%q: %v", in, err)
		}
	}
}
