package cri

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fixtures follow containerd's and CRI-O's verbose info structs; see
// testdata/README.md for where each shape comes from.
func TestParseInfoFixtures(t *testing.T) {
	tests := map[string]struct {
		file string
		want containerInfo
	}{
		"containerd systemd": {"containerd-systemd.json", containerInfo{
			pid:         48213,
			sandboxID:   "6f1b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccddeeff0",
			cgroupsPath: "kubepods-burstable-pod1d2c3b4a_5e6f_4a7b_8c9d_0e1f2a3b4c5d.slice:cri-containerd:a3f9c2e1b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f",
		}},
		"containerd cgroupfs": {"containerd-cgroupfs.json", containerInfo{
			pid:         2207,
			sandboxID:   "9a8b7c6d5e4f30211203f4e5d6c7b8a90a1b2c3d4e5f60718293a4b5c6d7e8f9",
			cgroupsPath: "/kubepods/besteffort/pod0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9/5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c",
		}},
		"crio systemd": {"crio-systemd.json", containerInfo{
			pid:         91377,
			sandboxID:   "e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3",
			cgroupsPath: "kubepods-pod7e6d5c4b_3a29_4180_9f8e_7d6c5b4a3928.slice:crio:9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b",
		}},
		"crio cgroupfs exited": {"crio-cgroupfs-exited.json", containerInfo{
			pid:         0,
			sandboxID:   "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			cgroupsPath: "/kubepods/burstable/pod11112222-3333-4444-5555-666677778888/crio-fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210",
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseInfo(map[string]string{"info": string(b)})
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
			// Every fixture's cgroupsPath must convert.
			if _, err := CgroupPath(got.cgroupsPath); err != nil {
				t.Errorf("CgroupPath: %v", err)
			}
		})
	}
}

func TestParseInfoEdges(t *testing.T) {
	tests := map[string]struct {
		info    map[string]string
		want    containerInfo
		wantErr string
	}{
		"nil map (fake runtime)":  {info: nil},
		"no info key":             {info: map[string]string{"other": "x"}},
		"empty object":            {info: map[string]string{"info": "{}"}},
		"null runtimeSpec":        {info: map[string]string{"info": `{"pid":7,"runtimeSpec":null}`}, want: containerInfo{pid: 7}},
		"spec without linux":      {info: map[string]string{"info": `{"pid":7,"runtimeSpec":{"ociVersion":"1.0.0"}}`}, want: containerInfo{pid: 7}},
		"unknown keys ignored":    {info: map[string]string{"info": `{"pid":7,"future":{"a":[1]}}`}, want: containerInfo{pid: 7}},
		"not json":                {info: map[string]string{"info": "pid=7"}, wantErr: "parsing info JSON"},
		"pid is a string":         {info: map[string]string{"info": `{"pid":"7"}`}, wantErr: "parsing info JSON"},
		"negative pid":            {info: map[string]string{"info": `{"pid":-1}`}, wantErr: "out of range"},
		"pid above PID_MAX_LIMIT": {info: map[string]string{"info": `{"pid":4194305}`}, wantErr: "out of range"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseInfo(tc.info)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func FuzzParseInfoJSON(f *testing.F) {
	for _, name := range []string{"containerd-systemd.json", "crio-systemd.json", "crio-cgroupfs-exited.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"pid":1,"runtimeSpec":{"linux":{"cgroupsPath":"a:b:c"}}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ci, err := parseInfoJSON(b)
		if err != nil {
			return
		}
		if ci.pid < 0 || ci.pid > maxPID {
			t.Fatalf("pid %d accepted", ci.pid)
		}
	})
}
