package policy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"podwarden/internal/cgroup"
)

// TestCgroupSelectorRefused: a selector that would make a host or parent
// level a target is refused by Parse and Validate alike, naming the
// selector, a path it would match and why that path cannot be a target.
// On the old code every one of these loaded.
func TestCgroupSelectorRefused(t *testing.T) {
	tests := map[string]struct{ sel, want string }{
		"everything":              {"**", `"**" would make / a target: it is the root cgroup`},
		"root, written with a /":  {"/**", `"/**" would make / a target`},
		"every top level":         {"/*", `"/*" would make /init.scope a target: it is systemd's own cgroup`},
		"system.slice subtree":    {"/system.slice/**", `would make /system.slice a target: it is a systemd slice`},
		"every service":           {"/system.slice/*", `would make /system.slice/kubelet.service a target: it is the unit of a host daemon`},
		"sshd by a loose glob":    {"**/ssh*.service", `would make /system.slice/sshd.service a target`},
		"user sessions":           {"/user.slice/*/*", `would make /user.slice/user-1000.slice/session-1.scope a target`},
		"kind's kubelet.slice":    {"/kubelet.slice/**", `would make /kubelet.slice a target`},
		"pods, not containers":    {"/kubepods/burstable/*", `matches /kubepods/burstable/pod0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0, a pod cgroup, parent of the pod's containers, but not the containers in it`},
		"QoS level only":          {"/kubepods.slice/kubepods-burstable.slice", `matches /kubepods.slice/kubepods-burstable.slice, a kubelet kubepods or QoS level`},
		"systemd pods only":       {"/kubepods.slice/*/*pod*.slice", `a pod cgroup, parent of the pod's containers, but not the containers in it`},
		"guaranteed pods, kind":   {"/kubelet.slice/kubelet-kubepods.slice/*/*", `matches /kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod0f1e2d3c_4b5a_4978_8796_a5b4c3d2e1f0.slice, a pod cgroup`},
		"malformed still refused": {"/kubepods/[", `bad glob segment`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(strings.NewReader("cgroupSelector: '"+tc.sel+"'\n"), "p.yaml")
			if err == nil || !strings.HasPrefix(err.Error(), "p.yaml:1: cgroupSelector: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse: %v\nwant p.yaml:1: cgroupSelector: ...%s...", err, tc.want)
			}
			c := Default()
			c.CgroupSelector = tc.sel // as --cgroup-selector sets it
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate: %v\nwant ...%s...", err, tc.want)
			}
		})
	}
}

// TestCgroupSelectorAccepted: the selectors the docs, --help, tests and
// benchmarks use still load. A subtree glob matches the kubelet's level
// it starts at ("/kubepods/**" matches /kubepods) and is fine: the agent
// never targets that level, only the containers in the subtree.
func TestCgroupSelectorAccepted(t *testing.T) {
	for _, sel := range []string{
		"",
		"/kubepods*/**/*burstable*/**",
		"/kubepods*/burstable/**",
		"/kubepods/**",
		"/kubepods*/**",
		"/kubepods.slice/kubepods-burstable.slice/**",
		"/kubelet.slice/kubelet-kubepods.slice/**",
		"/kubepods/pod*/*",
		"kubepods*/**/*pod[0-9a-f]*/*",
		"/podwarden-test-1/kubepods/**",
		"/system.slice/batch-*.service",
		"/docker/*",
		"/docker/**",
		"/none/*",
		"/nothing/**",
	} {
		if _, err := Parse(strings.NewReader("cgroupSelector: '"+sel+"'\n"), "p.yaml"); err != nil {
			t.Errorf("%q: %v", sel, err)
		}
	}
}

// TestNeverTarget: the match-time guard agrees with the representative
// paths the load-time check uses, and lets every container layout through.
func TestNeverTarget(t *testing.T) {
	for _, p := range hostPaths {
		if NeverTarget(p) == "" {
			t.Errorf("host path %s: NeverTarget says it may be a target", p)
		}
	}
	for _, l := range podLevels {
		for _, p := range []string{cgroup.Parent(l.pod), l.pod} {
			if NeverTarget(p) == "" {
				t.Errorf("kubelet level %s: NeverTarget says it may be a target", p)
			}
		}
		if why := NeverTarget(l.pod + "/" + l.container); why != "" {
			t.Errorf("container %s/%s: %s", l.pod, l.container, why)
		}
	}
	for p, want := range map[string]string{
		"":                              "the root cgroup",
		"//":                            "the root cgroup",
		"/system.slice/":                "a systemd slice",
		"/kubepods/burstable/":          "a kubelet kubepods or QoS level",
		"/system.slice/batch-1.service": "",
		"/system.slice/sshd.service":    "the unit of a host daemon",
		"/user.slice/user-0.slice/session-4.scope":                             "the unit of a host daemon or login session",
		"/batch.slice/sshd.service":                                            "", // only the host's own system.slice
		"/docker/" + exampleContainerID:                                        "",
		"/podwarden-test/kubepods/pod" + exampleUID + "/" + exampleContainerID: "",
		"/podwarden-test/kubepods/pod" + exampleUID:                            "a pod cgroup",
		"/kubepods/podnot-a-uid":                                               "", // not a pod, so not a pod level
	} {
		if got := NeverTarget(p); !strings.HasPrefix(got, want) || (want == "" && got != "") {
			t.Errorf("NeverTarget(%q) = %q, want %q...", p, got, want)
		}
	}
}

// TestCommRefusesControlAndBidi: a comm rule with NUL, a control
// character or a bidirectional formatting character is refused, naming
// the rule; the message itself is ASCII, so it cannot reorder a terminal.
func TestCommRefusesControlAndBidi(t *testing.T) {
	for _, r := range []rune{0, '\n', '\t', 0x1b, 0x7f, 0x85, 0x061C, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069} {
		comm := "ssh" + string(r) + "d"
		// Escaped, as a file would have to: raw, YAML itself refuses most
		// control characters and folds NEL into a space.
		yamlComm := "ssh" + fmt.Sprintf(`\u%04X`, r) + "d"
		_, err := Parse(strings.NewReader("protected:\n  - comm: sshd\n  - comm: \""+yamlComm+"\"\n"), "p.yaml")
		if err == nil || !strings.HasPrefix(err.Error(), "p.yaml:3: protected[1].comm: ") {
			t.Errorf("%U: Parse: %v", r, err)
			continue
		}
		for _, b := range []byte(err.Error()) {
			if b < 0x20 || b >= 0x7f {
				t.Errorf("%U: error is not plain ASCII: %q", r, err.Error())
				break
			}
		}
		c := Default()
		c.Protected = append(c.Protected, ProtectedRule{Comm: comm, Adj: -900})
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "protected[12].comm") {
			t.Errorf("%U: Validate: %v", r, err)
		}
	}
	for _, ok := range []string{"sshd", "kworker/0:1", "café-d", "systemd-journal", "1234"} {
		if err := checkComm(ok); err != nil || !utf8.ValidString(ok) {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
}

// TestPolicySizeLimit: files over MaxFileSize are refused, on real files,
// with the file and the limit named; a file at the limit loads. An endless
// source (/dev/zero) is cut at the limit instead of being read whole: the
// old code read the whole of it into the YAML decoder.
func TestPolicySizeLimit(t *testing.T) {
	dir := t.TempDir()
	line := "# padding padding padding padding padding padding padding padding\n"
	at := filepath.Join(dir, "at-limit.yaml")
	body := "podOOMScoreAdj: 800\n" + strings.Repeat(line, (MaxFileSize-20)/len(line))
	body += strings.Repeat("#", MaxFileSize-len(body)-1) + "\n"
	over := filepath.Join(dir, "over.yaml")
	for p, b := range map[string]string{at: body, over: body + "\n"} {
		if err := os.WriteFile(p, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if c, err := Load(at); err != nil || c.PodOOMScoreAdj != 800 {
		t.Errorf("file of exactly %d bytes: %v", MaxFileSize, err)
	}
	for _, p := range []string{over, "/dev/zero"} {
		_, err := Load(p)
		var pe *Error
		if !errors.As(err, &pe) || err.Error() != p+": larger than the limit of 1048576 bytes (1 MiB) for a policy file" {
			t.Errorf("Load(%s) = %v", p, err)
		}
	}
}

// BenchmarkParseAtLimit is the worst case the limit allows: a 1 MiB file
// that is all rules, the shape that makes the most YAML nodes per byte.
// (Before the limit, a 10 MB file cost 507 MB of RSS.)
func BenchmarkParseAtLimit(b *testing.B) {
	rule := "- {comm: a}\n"
	in := "protected:\n" + strings.Repeat(rule, (MaxFileSize-12)/len(rule))
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := Parse(strings.NewReader(in), "big.yaml"); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzCgroupSelector: any selector is accepted or refused without a
// panic, and NeverTarget reads a path the same however its slashes are
// doubled or trailing, as the cgroup paths it is given may be.
func FuzzCgroupSelector(f *testing.F) {
	for _, s := range []string{"**", "/kubepods/**", "/system.slice/*", "/kubepods/burstable/*", "/docker/**", "[", "/a//b/", "kubepods.slice/kubepods-pod" + exampleUID + ".slice"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_ = checkCgroupSelector(s)
		p := "/" + strings.Join(segments(s), "/")
		if a, b := NeverTarget(p), NeverTarget("//"+strings.ReplaceAll(p, "/", "//")+"/"); a != b {
			t.Errorf("NeverTarget(%q) = %q, but %q with doubled slashes", p, a, b)
		}
	})
}
