package cgroup

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseMemStat(t *testing.T) {
	// Lines as 6.1 and 4.19 print them (abridged, order kept).
	v2 := "anon 104857600\nfile 52428800\nkernel 1048576\nkernel_stack 16384\npagetables 204800\nsec_pagetables 0\n" +
		"percpu 0\nsock 0\nvmalloc 0\nshmem 4194304\nfile_mapped 1048576\nfile_dirty 0\nfile_writeback 0\n" +
		"swapcached 0\nanon_thp 0\nfile_thp 0\nshmem_thp 0\ninactive_anon 104857600\nactive_anon 4194304\n" +
		"inactive_file 31457280\nactive_file 16777216\nunevictable 0\nslab_reclaimable 0\nworkingset_refault_file 12\n"
	v1 := "cache 1\nrss 2\nrss_huge 0\nshmem 3\nmapped_file 0\ninactive_file 4\nactive_file 5\n" +
		"hierarchical_memory_limit 9223372036854771712\ntotal_cache 52428800\ntotal_rss 104857600\n" +
		"total_shmem 4194304\ntotal_inactive_file 31457280\ntotal_active_file 16777216\n"
	want := MemStat{Anon: 100 << 20, File: 50 << 20, Shmem: 4 << 20, ActiveFile: 16 << 20, InactiveFile: 30 << 20}
	for name, tc := range map[string]struct {
		in      string
		v       Version
		want    MemStat
		wantErr bool
	}{
		"v2 6.1":            {in: v2, v: V2, want: want},
		"v1 total_ keys":    {in: v1, v: V1, want: want},
		"hybrid reads v1":   {in: v1, v: Hybrid, want: want},
		"v1 keys on v2":     {in: v1, v: V2, want: MemStat{Shmem: 3, InactiveFile: 4, ActiveFile: 5}},
		"empty":             {in: "", v: V2},
		"bad value":         {in: "anon -1\n", v: V2, wantErr: true},
		"three fields":      {in: "anon 1 2\n", v: V2, wantErr: true},
		"unknown keys only": {in: "pgfault 7\npgmajfault 1\n", v: V2},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := ParseMemStat(strings.NewReader(tc.in), tc.v)
			if (err != nil) != tc.wantErr || !tc.wantErr && got != tc.want {
				t.Errorf("ParseMemStat = %+v, %v; want %+v, err %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestMemStatCommitted(t *testing.T) {
	for name, tc := range map[string]struct {
		s     MemStat
		usage uint64
		want  uint64
	}{
		"cache is taken back":      {MemStat{Anon: 100, File: 300}, 420, 120},
		"shmem is not":             {MemStat{Anon: 100, File: 300, Shmem: 200}, 420, 320},
		"shmem above file (racy)":  {MemStat{File: 10, Shmem: 20}, 50, 50},
		"usage below reclaimable":  {MemStat{File: 500}, 400, 0},
		"no stat: all of usage":    {MemStat{}, 77, 77},
		"anon only equals usage-k": {MemStat{Anon: 64}, 70, 70},
	} {
		t.Run(name, func(t *testing.T) {
			if got := tc.s.Committed(tc.usage); got != tc.want {
				t.Errorf("Committed(%d) = %d, want %d", tc.usage, got, tc.want)
			}
		})
	}
}

func TestFSMemStat(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "pod/c"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"cgroup.controllers", "pod/c/cgroup.procs"} {
		writeFile(t, filepath.Join(root, f), "")
	}
	writeFile(t, filepath.Join(root, "pod/c/memory.stat"), "anon 4096\nfile 8192\nshmem 0\n")
	fs, err := NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	s, err := fs.MemStat("/pod/c")
	if err != nil || s.Anon != 4096 || s.File != 8192 {
		t.Errorf("MemStat = %+v, %v", s, err)
	}
	if _, err := fs.MemStat("/pod"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("cgroup without memory.stat: %v, want ErrUnsupported", err)
	}
	if _, err := fs.MemStat("/gone"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing cgroup: %v, want ErrNotExist", err)
	}
}

func FuzzParseMemStat(f *testing.F) {
	f.Add([]byte("anon 1\nfile 2\nshmem 3\nactive_file 4\ninactive_file 5\n"), true)
	f.Add([]byte("total_rss 1\ntotal_cache 9\ntotal_shmem 10\n"), false)
	f.Fuzz(func(t *testing.T, b []byte, v2 bool) {
		v := V1
		if v2 {
			v = V2
		}
		s, err := ParseMemStat(bytes.NewReader(b), v)
		if err != nil {
			return
		}
		if s.Reclaimable() > s.File {
			t.Fatalf("reclaimable %d above file %d", s.Reclaimable(), s.File)
		}
		for _, u := range []uint64{0, 1, s.File, s.File + s.Anon} {
			if c := s.Committed(u); c > u {
				t.Fatalf("Committed(%d) = %d: above usage", u, c)
			}
		}
	})
}

func TestTriggerString(t *testing.T) {
	for _, tc := range []struct {
		tr   Trigger
		want string
	}{
		{Trigger{Stall: 100 * time.Millisecond, Window: time.Second}, "some 100000 1000000"},
		{Trigger{Full: true, Stall: 50 * time.Millisecond, Window: 2 * time.Second}, "full 50000 2000000"},
	} {
		if got := tc.tr.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.tr, got, tc.want)
		}
	}
}

func TestOpenTriggerMissing(t *testing.T) {
	dir := t.TempDir()
	_, err := OpenTrigger(filepath.Join(dir, "memory.pressure"), Trigger{Stall: time.Millisecond, Window: time.Second})
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("pressure file missing in an existing dir: %v, want ErrUnsupported", err)
	}
	_, err = OpenTrigger(filepath.Join(dir, "gone", "memory.pressure"), Trigger{Stall: time.Millisecond, Window: time.Second})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cgroup gone: %v, want ErrNotExist", err)
	}
}

// TestOpenTriggerLive arms a real trigger on this host's
// /proc/pressure/memory. A 2 s window is what even an unprivileged
// process may use on 6.5+; older kernels want CAP_SYS_RESOURCE.
func TestOpenTriggerLive(t *testing.T) {
	const file = "/proc/pressure/memory"
	if _, err := os.Stat(file); err != nil {
		t.Skip("no PSI on this host: " + err.Error())
	}
	tr, err := OpenTrigger(file, Trigger{Stall: 150 * time.Millisecond, Window: UnprivilegedWindow})
	if errors.Is(err, unix.EPERM) {
		t.Skip("this kernel wants CAP_SYS_RESOURCE for PSI triggers: " + err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	// An armed trigger with no stall does not fire: POLLPRI stays clear.
	fds := []unix.PollFd{{Fd: int32(tr.Fd()), Events: unix.POLLPRI}}
	n, err := unix.Poll(fds, 0)
	if err != nil {
		t.Fatalf("poll: %v", err)
	}
	if n > 0 && fds[0].Revents&(unix.POLLERR|unix.POLLNVAL) != 0 {
		t.Errorf("poll on a fresh trigger: revents %#x", fds[0].Revents)
	}
	if err := tr.Close(); err != nil || tr.Close() != nil {
		t.Errorf("close: %v", err)
	}
}
