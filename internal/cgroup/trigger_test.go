package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemPressureFile: the root cgroup's memory.pressure stands for the
// node only when the mount is the host's root; a namespace's root (it has
// cgroup.type) and cgroup v1 are refused.
func TestSystemPressureFile(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		want  string // relative to the root; "" for an error
		err   string
		unsup bool
	}{
		{name: "v2 host root", files: []string{"cgroup.controllers", "memory.pressure"}, want: "memory.pressure"},
		{name: "v2 namespace root", files: []string{"cgroup.controllers", "cgroup.type", "memory.pressure"}, err: "ROOT is not the host's root cgroup (it has cgroup.type: mounted inside a cgroup namespace?)"},
		{name: "hybrid", files: []string{"memory/cgroup.procs", "unified/cgroup.controllers", "unified/memory.pressure"}, want: "unified/memory.pressure"},
		{name: "hybrid namespace root", files: []string{"memory/cgroup.procs", "unified/cgroup.controllers", "unified/cgroup.type"}, err: "ROOT/unified is not the host's root cgroup"},
		{name: "v1", files: []string{"memory/cgroup.procs"}, err: "system memory.pressure on cgroup v1", unsup: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, f := range tc.files {
				p := filepath.Join(root, f)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			fs, err := NewFS(root)
			if err != nil {
				t.Fatal(err)
			}
			got, err := fs.SystemPressureFile()
			if tc.want != "" {
				if err != nil || got != filepath.Join(root, tc.want) {
					t.Errorf("got %q, %v; want %s", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("got %q, want an error", got)
			}
			if msg := strings.ReplaceAll(err.Error(), root, "ROOT"); !strings.Contains(msg, tc.err) {
				t.Errorf("error %q lacks %q", msg, tc.err)
			}
			if errors.Is(err, errors.ErrUnsupported) != tc.unsup {
				t.Errorf("error %v: unsupported=%v, want %v", err, !tc.unsup, tc.unsup)
			}
		})
	}
}
