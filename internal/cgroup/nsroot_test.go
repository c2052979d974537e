package cgroup

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestResolver(t *testing.T) {
	root := t.TempDir()
	write := func(cg, procs string) {
		dir := filepath.Join(root, cg)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(procs), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("memory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	write("/", "1\n")
	agentCg := "/kubepods/besteffort/pod11111111-2222-3333-4444-555555555555/" + "aa00000000000000000000000000000000000000000000000000000000000000"
	write("/kubepods/besteffort", "")
	write(agentCg, "4242\n")
	write("/kubepods/burstable/pod66666666-7777-8888-9999-000000000000/bb", "77\n")
	fs, err := NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, self, wantRoot string
		in, want             string
	}{
		{"private namespace", "/", agentCg, "/../../../burstable/pod66666666-7777-8888-9999-000000000000/bb", "/kubepods/burstable/pod66666666-7777-8888-9999-000000000000/bb"},
		{"host namespace", agentCg, "/", "/system.slice/sshd.service", "/system.slice/sshd.service"},
		{"own sub-cgroup in the namespace", "/x", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := fs.NewResolver(context.Background(), 4242, tt.self)
			if tt.wantRoot == "" {
				if err == nil {
					t.Fatalf("want an error, got root %s", r.Root)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Root != tt.wantRoot {
				t.Fatalf("root = %s, want %s", r.Root, tt.wantRoot)
			}
			if got := r.Host(tt.in); got != tt.want {
				t.Errorf("Host(%s) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
	m, err := fs.PidCgroups(context.Background())
	if err != nil || len(m) != 3 || m[1] != "/" || m[4242] != agentCg || m[77] != "/kubepods/burstable/pod66666666-7777-8888-9999-000000000000/bb" {
		t.Fatalf("PidCgroups = %v, %v", m, err)
	}
	if _, err := fs.NewResolver(context.Background(), 9999, "/"); err == nil {
		t.Fatal("a pid in no cgroup resolved")
	}
}
