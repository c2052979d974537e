package policy

import (
	"strings"
	"testing"
)

func TestMatchGlob(t *testing.T) {
	const (
		sysd   = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1d2c_3b4a.slice/cri-containerd-abc.scope"
		cgfs   = "/kubepods/burstable/pod1d2c-3b4a/abc"
		guar   = "/kubepods/pod1d2c-3b4a/abc"
		podSel = "/kubepods*/**/*pod[0-9a-f]*/*"
	)
	tests := map[string]struct {
		pattern, path string
		want          bool
	}{
		"literal":                         {"/system.slice/sshd.service", "/system.slice/sshd.service", true},
		"literal differs":                 {"/system.slice/sshd.service", "/system.slice/cron.service", false},
		"star within segment":             {"/system.slice/*.service", "/system.slice/sshd.service", true},
		"star does not cross slash":       {"/system.slice/*", "/system.slice/a/b", false},
		"double star zero segments":       {"/a/**/b", "/a/b", true},
		"double star many segments":       {"/a/**/b", "/a/x/y/z/b", true},
		"double star at end":              {"/kubepods/**", "/kubepods/burstable/pod1/c", true},
		"double star at end matches base": {"/kubepods/**", "/kubepods", true},
		"double star alone":               {"**", "/anything/at/all", true},
		"double star matches root":        {"**", "/", true},
		"slashes ignored":                 {"kubepods*/**", "/kubepods.slice/x", true},
		"trailing slash ignored":          {"/a/b/", "/a/b", true},
		"exe any dir":                     {"**/sshd", "/usr/sbin/sshd", true},
		"exe wrong name":                  {"**/sshd", "/usr/sbin/sshd-session", false},
		"question mark":                   {"/a/?", "/a/b", true},
		"class":                           {"/a/[bc]", "/a/c", true},
		"bad pattern matches nothing":     {"/a/[", "/a/[", false},
		"pod selector systemd container":  {podSel, sysd, true},
		"pod selector cgroupfs container": {podSel, cgfs, true},
		"pod selector guaranteed":         {podSel, guar, true},
		"pod selector not the pod itself": {podSel, "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1d2c_3b4a.slice", false},
		"pod selector not a qos slice":    {podSel, "/kubepods.slice/kubepods-besteffort.slice/x", false},
		"pod selector not system":         {podSel, "/system.slice/sshd.service", false},
		"naive pod* misses systemd":       {"/kubepods*/**/pod*/*", sysd, false},
		"empty pattern matches root":      {"", "/", true},
		"empty pattern not others":        {"", "/a", false},
		"many double stars":               {"/**/**/**/**/**/**/**/**/x", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := MatchGlob(tc.pattern, tc.path); got != tc.want {
				t.Errorf("MatchGlob(%q, %q) = %v, want %v", tc.pattern, tc.path, got, tc.want)
			}
		})
	}
}

func TestCheckGlob(t *testing.T) {
	for _, ok := range []string{"", "/a/**/b", "/kubepods*/**/*pod[0-9a-f]*/*", "**/sshd", "/a/\\*"} {
		if err := checkGlob(ok); err != nil {
			t.Errorf("checkGlob(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"/a/[", "/a/b\\", "/x/[z-a/y"} {
		if err := checkGlob(bad); err == nil {
			t.Errorf("checkGlob(%q) accepted", bad)
		}
	}
}

func FuzzMatchGlob(f *testing.F) {
	f.Add("/kubepods*/**/*pod[0-9a-f]*/*", "/kubepods/burstable/pod1/abc")
	f.Add("**/sshd", "/usr/sbin/sshd")
	f.Add("/a/[", "/a/b")
	f.Add("/**/**/x", "/a/b/x")
	f.Fuzz(func(t *testing.T, pattern, p string) {
		got := MatchGlob(pattern, p)
		// A path with no glob characters is a pattern that matches itself.
		if !strings.ContainsAny(p, `*?[\`) && !MatchGlob(p, p) {
			t.Fatalf("literal %q does not match itself", p)
		}
		if !MatchGlob("**", p) {
			t.Fatalf("** does not match %q", p)
		}
		// Malformed patterns never match.
		if got && checkGlob(pattern) != nil {
			t.Fatalf("bad pattern %q matched %q", pattern, p)
		}
	})
}
