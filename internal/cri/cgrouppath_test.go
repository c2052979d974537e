package cri

import (
	"path"
	"strings"
	"testing"
)

func TestCgroupPath(t *testing.T) {
	const id = "a3f9c2e1b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f"
	tests := map[string]struct {
		in, want string
		wantErr  string
	}{
		"systemd burstable containerd": {
			in:   "kubepods-burstable-pod1d2c3b4a_5e6f_4a7b_8c9d_0e1f2a3b4c5d.slice:cri-containerd:" + id,
			want: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1d2c3b4a_5e6f_4a7b_8c9d_0e1f2a3b4c5d.slice/cri-containerd-" + id + ".scope",
		},
		"systemd besteffort crio": {
			in:   "kubepods-besteffort-podabc.slice:crio:" + id,
			want: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podabc.slice/crio-" + id + ".scope",
		},
		"systemd guaranteed sits under kubepods": {
			in:   "kubepods-podabc.slice:cri-containerd:" + id,
			want: "/kubepods.slice/kubepods-podabc.slice/cri-containerd-" + id + ".scope",
		},
		"systemd docker": {
			in:   "kubepods-podabc.slice:docker:" + id,
			want: "/kubepods.slice/kubepods-podabc.slice/docker-" + id + ".scope",
		},
		"systemd empty slice defaults to system.slice": {
			in:   ":docker:" + id,
			want: "/system.slice/docker-" + id + ".scope",
		},
		"systemd root slice":      {in: "-.slice:p:n", want: "/p-n.scope"},
		"systemd empty prefix":    {in: "a.slice::n", want: "/a.slice/n.scope"},
		"systemd name is a slice": {in: "a.slice:p:a-b.slice", want: "/a.slice/a-b.slice"},
		"cgroupfs containerd":     {in: "/kubepods/burstable/pod1d2c/" + id, want: "/kubepods/burstable/pod1d2c/" + id},
		"cgroupfs crio":           {in: "/kubepods/podx/crio-" + id, want: "/kubepods/podx/crio-" + id},
		"cgroupfs cleaned":        {in: "/kubepods//besteffort/podx/./c/", want: "/kubepods/besteffort/podx/c"},
		"empty":                   {in: "", wantErr: "empty"},
		"relative cgroupfs":       {in: "kubepods/podx/c", wantErr: "neither absolute"},
		"two parts":               {in: "kubepods.slice:c", wantErr: "slice:prefix:name"},
		"four parts":              {in: "a.slice:b:c:d", wantErr: "slice:prefix:name"},
		"slice without suffix":    {in: "kubepods:crio:c", wantErr: "does not end in .slice"},
		"bare .slice":             {in: ".slice:crio:c", wantErr: "does not end in .slice"},
		"double dash in slice":    {in: "kubepods--x.slice:crio:c", wantErr: "empty component"},
		"leading dash in slice":   {in: "-kubepods.slice:crio:c", wantErr: "empty component"},
		"slash in slice":          {in: "a/b.slice:crio:c", wantErr: "slash"},
		"empty name":              {in: "a.slice:crio:", wantErr: "bad unit name"},
		"slash in name":           {in: "a.slice:crio:x/y", wantErr: "bad unit name"},
		"slash in prefix":         {in: "a.slice:x/y:c", wantErr: "bad unit name"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := CgroupPath(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("CgroupPath(%q) = %q, %v; want error %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("CgroupPath(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("CgroupPath(%q)\n got %s\nwant %s", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzCgroupPath(f *testing.F) {
	f.Add("kubepods-burstable-pod1d2c.slice:cri-containerd:abc")
	f.Add("/kubepods/burstable/pod1/abc")
	f.Add("-.slice:p:n")
	f.Add(":docker:x")
	f.Add("a--b.slice:c:d")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := CgroupPath(in)
		if err != nil {
			return
		}
		// Whatever is accepted must be an absolute, clean path, so the
		// agent can compare it with /proc/PID/cgroup lines directly.
		if !strings.HasPrefix(got, "/") || path.Clean(got) != got {
			t.Fatalf("CgroupPath(%q) = %q: not absolute and clean", in, got)
		}
	})
}
