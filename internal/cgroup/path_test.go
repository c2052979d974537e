package cgroup

import "testing"

func TestPathHelpers(t *testing.T) {
	tests := []struct {
		path, parent, base string
	}{
		{"/kubepods/podu/abc", "/kubepods/podu", "abc"},
		{"/kubepods", "/", "kubepods"},
		{"/", "/", ""},
		{"", "/", ""},
		{"noslash", "/", "noslash"},
		{"/a/b/", "/a/b", ""},
		{"//a", "/", "a"},
	}
	for _, tt := range tests {
		if got := Parent(tt.path); got != tt.parent {
			t.Errorf("Parent(%q) = %q, want %q", tt.path, got, tt.parent)
		}
		if got := Base(tt.path); got != tt.base {
			t.Errorf("Base(%q) = %q, want %q", tt.path, got, tt.base)
		}
	}
}

func TestWithin(t *testing.T) {
	tests := []struct {
		path, cg string
		want     bool
	}{
		{"/a/b", "/a/b", true},
		{"/a/b/c", "/a/b", true},
		{"/a/b/c/d", "/a/b", true},
		{"/a/bc", "/a/b", false}, // a sibling that shares the prefix
		{"/a", "/a/b", false},
		{"/x", "/", true},
		{"/x", "", true},
		{"", "/a", false},
		{"/a/b", "/a/b/", false},
	}
	for _, tt := range tests {
		if got := Within(tt.path, tt.cg); got != tt.want {
			t.Errorf("Within(%q, %q) = %v, want %v", tt.path, tt.cg, got, tt.want)
		}
	}
}

func TestUnitID(t *testing.T) {
	tests := []struct{ name, want string }{
		{"cri-containerd-abc.scope", "abc"},
		{"crio-abc.scope", "abc"},
		{"docker-abc.scope", "abc"},
		{"abc", "abc"},
		{"abc.scope", "abc"},
		// conmon is not the container: its id stays unlike any the
		// runtime lists.
		{"crio-conmon-abc.scope", "conmon-abc"},
		{"cri-containerd-.scope", ""},
		{"cri-containerd-abc.scope.scope", "abc.scope"},
	}
	for _, tt := range tests {
		if got := UnitID(tt.name); got != tt.want {
			t.Errorf("UnitID(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}
