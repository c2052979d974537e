package cgroup

import "testing"

func TestShortID(t *testing.T) {
	tests := map[string]struct{ id, want string }{
		"containerd id": {"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "0123456789abc"},
		"exactly 13":    {"0123456789abc", "0123456789abc"},
		"shorter":       {"abc", "abc"},
		"empty":         {"", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := ShortID(tc.id); got != tc.want {
				t.Errorf("ShortID(%q) = %q, want %q", tc.id, got, tc.want)
			}
		})
	}
}
