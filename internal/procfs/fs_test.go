package procfs

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const kB = 1024

const podCgroup = "/kubepods.slice/kubepods-pod30e633b5_4140_4774_9122_1b9e140c8556.slice/crio-2c6ca22c5968.scope"

// fixtureProcs is testdata/proc read with FieldAll. 1005001 (files gone)
// and 1005002 (reaped zombie, status without Uid) are not in it.
var fixtureProcs = []Proc{
	{PID: 1, NSPID: 1, PPID: 0, Comm: "systemd", State: 'S', Cmdline: []string{"/sbin/init", "splash"}, Threads: 1,
		RSSAnon: 4712 * kB, RSSFile: 7924 * kB, PgTables: 96 * kB, Cgroup: "/init.scope"},
	{PID: 2, NSPID: 2, Comm: "kthreadd", State: 'S', Threads: 1, Kernel: true, Cgroup: "/"},
	{PID: 3, NSPID: 3, PPID: 2, Comm: "pool_workqueue_release", State: 'S', Threads: 1, Kernel: true, Cgroup: "/"},
	{PID: 11, NSPID: 11, PPID: 2, Comm: "kworker/0:1-virtio_vsock", State: 'I', Threads: 1, Kernel: true, Cgroup: "/"},
	{PID: 682, NSPID: 682, PPID: 1, Comm: "systemd-journal", State: 'S', Cmdline: []string{"/lib/systemd/systemd-journald"}, Threads: 1,
		RSSAnon: 1520 * kB, RSSFile: 6600 * kB, RSSShmem: 2048 * kB, Swap: 12 * kB, PgTables: 88 * kB,
		OOMScore: 500, OOMScoreAdj: -250, Cgroup: "/system.slice/systemd-journald.service"},
	{PID: 1231, NSPID: 1231, PPID: 1, Comm: "crio", State: 'S', Cmdline: []string{"/usr/local/bin/crio"}, Threads: 14,
		RSSAnon: 60120 * kB, RSSFile: 40100 * kB, PgTables: 512 * kB,
		OOMScore: 1, OOMScoreAdj: -999, Cgroup: "/system.slice/crio.service"},
	{PID: 4227, NSPID: 4227, PPID: 1, Comm: "sshd", State: 'S', Cmdline: []string{"sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"}, Threads: 1,
		RSSAnon: 1764 * kB, RSSFile: 6000 * kB, PgTables: 76 * kB,
		OOMScoreAdj: -1000, Cgroup: "/system.slice/ssh.service"},
	{PID: 999004, NSPID: 999004, PPID: 1, Comm: "conmon", State: 'S',
		Cmdline: []string{"/usr/bin/conmon", "-b", "/run/containers/storage/overlay-containers/2c6c", "--log-tag", "", "--log-level", "info"}, Threads: 1,
		RSSAnon: 300 * kB, RSSFile: 1500 * kB, PgTables: 60 * kB,
		OOMScoreAdj: -1000, Cgroup: "/", CgroupV1Memory: "/kubepods/pod30e633b5/crio-conmon-2c6c"},
	{PID: 999026, NSPID: 1, PPID: 999004, Comm: "systemd", State: 'S', Cmdline: []string{"/sbin/init"}, Threads: 1,
		RSSAnon: 9000 * kB, RSSFile: 12000 * kB, RSSShmem: 400 * kB, PgTables: 120 * kB,
		OOMScore: 2, OOMScoreAdj: -997, Cgroup: "/", CgroupV1Memory: "/kubepods/pod30e633b5/crio-2c6c"},
	{PID: 1004852, NSPID: 40, PPID: 999026, Comm: "systemd", State: 'S', UID: 1000, Cmdline: []string{"/lib/systemd/systemd", "--user"}, Threads: 1,
		RSSAnon: 3000 * kB, RSSFile: 8000 * kB, PgTables: 80 * kB,
		OOMScore: 2, OOMScoreAdj: -997, Cgroup: podCgroup},
	{PID: 1004861, NSPID: 41, PPID: 1004852, Comm: "(sd-pam)", State: 'S', UID: 1000, Cmdline: []string{"(sd-pam)"}, Threads: 1,
		RSSAnon: 1200 * kB, RSSFile: 3000 * kB, PgTables: 60 * kB,
		OOMScore: 2, OOMScoreAdj: -997, Cgroup: podCgroup},
	{PID: 1004900, NSPID: 150, PPID: 1004852, Comm: "tmux: server", State: 'S', UID: 1000, Cmdline: []string{"tmux"}, Threads: 1,
		RSSAnon: 2500 * kB, RSSFile: 3100 * kB, PgTables: 64 * kB,
		OOMScore: 2, OOMScoreAdj: -997, Cgroup: podCgroup},
	{PID: 1004901, NSPID: 151, PPID: 1004900, Comm: "x) S 1 (y", State: 'S', UID: 1000, Cmdline: []string{"./x) S 1 (y", "--evil"}, Threads: 1,
		RSSAnon: 100 * kB, RSSFile: 200 * kB, PgTables: 40 * kB,
		OOMScore: 2, OOMScoreAdj: -997, Cgroup: podCgroup},
	{PID: 1004927, NSPID: 212, PPID: 1004852, Comm: "jupyter-lab", State: 'S', UID: 1000,
		Cmdline: []string{"/opt/conda/bin/python3.11", "/opt/conda/bin/jupyter-lab", "--ip=0.0.0.0"}, Threads: 9,
		RSSAnon: 7518524 * kB, RSSFile: 4 * kB, Swap: 2048 * kB, PgTables: 14844 * kB,
		OOMScore: 2, OOMScoreAdj: -997, Cgroup: podCgroup},
	{PID: 1005000, NSPID: 300, PPID: 1004927, Comm: "python", State: 'Z', UID: 1000, Threads: 1, Exiting: true,
		OOMScoreAdj: -997, Cgroup: podCgroup},
}

// fixtureStart is the start time every stat file of testdata/proc has.
const fixtureStart = 8123

func fixtureFS(t testing.TB, dir string) FS {
	t.Helper()
	fsys, err := NewFS(filepath.Join("testdata", dir))
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

func TestScanFixture(t *testing.T) {
	for _, workers := range []int{1, 3} {
		fsys := fixtureFS(t, "proc").WithWorkers(workers)
		got, err := fsys.Scan(context.Background(), FieldAll)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]Proc, len(fixtureProcs))
		for i, p := range fixtureProcs {
			p.Fields = FieldAll
			p.StartTime = fixtureStart
			want[i] = p
		}
		if len(got) != len(want) {
			t.Errorf("workers=%d: got pids %v, want %v", workers, pids(got), pids(want))
		}
		for i := range min(len(got), len(want)) {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("workers=%d: process %d:\ngot  %+v\nwant %+v", workers, want[i].PID, got[i], want[i])
			}
		}
	}
}

// TestScanFields checks that each field set reads only its files: a
// process whose other files are gone still shows, and fields not asked for
// stay zero.
func TestScanFields(t *testing.T) {
	all := pids(fixtureProcs)
	tests := map[string]struct {
		fields   Field
		wantPIDs []int
		check    func(t *testing.T, p Proc)
	}{
		"none lists directories": {
			fields:   0,
			wantPIDs: slices.Concat(all, []int{1005001, 1005002}),
			check: func(t *testing.T, p Proc) {
				if !reflect.DeepEqual(p, Proc{PID: p.PID}) {
					t.Errorf("got %+v", p)
				}
			},
		},
		"stat keeps the process whose other files vanished": {
			fields:   FieldStat,
			wantPIDs: slices.Concat(all, []int{1005001, 1005002}),
			check: func(t *testing.T, p Proc) {
				if p.Comm == "" || p.State == 0 || p.RSSAnon != 0 || p.Cmdline != nil || p.Cgroup != "" {
					t.Errorf("got %+v", p)
				}
			},
		},
		"status skips the reaped zombie": {
			fields:   FieldStatus,
			wantPIDs: all,
			check: func(t *testing.T, p Proc) {
				// Status alone fills the parent and state too.
				if p.Comm != "" || p.State == 0 || (p.PID > 1 && p.PPID == 0 && p.PID != 2) {
					t.Errorf("got %+v", p)
				}
			},
		},
		"ps columns": {
			fields:   FieldStat | FieldOOMScore | FieldOOMScoreAdj,
			wantPIDs: slices.Concat(all, []int{1005002}),
			check: func(t *testing.T, p Proc) {
				if p.Comm == "" || p.UID != 0 || p.RSS() != 0 {
					t.Errorf("got %+v", p)
				}
			},
		},
		"cgroup": {
			fields:   FieldCgroup,
			wantPIDs: slices.Concat(all, []int{1005002}),
			check: func(t *testing.T, p Proc) {
				if p.Cgroup == "" || p.Comm != "" {
					t.Errorf("got %+v", p)
				}
			},
		},
	}
	fsys := fixtureFS(t, "proc")
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := fsys.Scan(context.Background(), tc.fields)
			if err != nil {
				t.Fatal(err)
			}
			want := slices.Sorted(slices.Values(tc.wantPIDs))
			if !reflect.DeepEqual(pids(got), want) {
				t.Fatalf("got pids %v\nwant %v", pids(got), want)
			}
			for _, p := range got {
				if p.Fields != tc.fields {
					t.Errorf("pid %d: Fields = %b, want %b", p.PID, p.Fields, tc.fields)
				}
				tc.check(t, p)
			}
		})
	}
}

func TestKernelFromStatusOnly(t *testing.T) {
	got, err := fixtureFS(t, "proc").Scan(context.Background(), FieldStatus)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range got {
		if want := p.PID == 2 || p.PPID == 2; p.Kernel != want {
			t.Errorf("pid %d: Kernel = %v, want %v", p.PID, p.Kernel, want)
		}
	}
}

func TestScanErrors(t *testing.T) {
	tests := map[string]struct {
		tree    string
		fields  Field
		wantErr string
	}{
		"malformed status": {
			tree:    "malformed-status",
			fields:  FieldStat | FieldStatus,
			wantErr: `scan processes: parse testdata/malformed-status/123/status: line "Uid:\tx\t0\t0\t0": invalid integer "x"`,
		},
		"malformed stat": {
			tree:    "malformed-stat",
			fields:  FieldStat,
			wantErr: "scan processes: parse testdata/malformed-stat/77/stat: 5 fields, want at least 22",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := fixtureFS(t, tc.tree).Scan(context.Background(), tc.fields)
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("got error %v\nwant %s", err, tc.wantErr)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Errorf("error is not a *ParseError")
			}
		})
	}
	// A file the process should have but that fails otherwise than with
	// ENOENT: here a directory in place of oom_score (EISDIR on read).
	t.Run("read error names the path", func(t *testing.T) {
		dir := copyTree(t, "testdata/proc")
		p := filepath.Join(dir, "682", "oom_score")
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		fsys, err := NewFS(dir)
		if err != nil {
			t.Fatal(err)
		}
		_, err = fsys.Scan(context.Background(), FieldOOMScore)
		if err == nil || !strings.Contains(err.Error(), "read "+p+": is a directory") {
			t.Fatalf("got error %v", err)
		}
	})
	for _, bad := range []struct{ file, content, want string }{
		{"oom_score", "lots\n", `invalid integer "lots\n"`},
		{"oom_score_adj", "", `invalid integer ""`},
		{"cgroup", "0:/x\n", "want id:controllers:path"},
	} {
		t.Run("malformed "+bad.file, func(t *testing.T) {
			dir := copyTree(t, "testdata/proc")
			p := filepath.Join(dir, "1231", bad.file)
			if err := os.WriteFile(p, []byte(bad.content), 0o644); err != nil {
				t.Fatal(err)
			}
			fsys, err := NewFS(dir)
			if err != nil {
				t.Fatal(err)
			}
			_, err = fsys.Scan(context.Background(), FieldAll)
			if err == nil || !strings.Contains(err.Error(), "parse "+p+": ") || !strings.Contains(err.Error(), bad.want) {
				t.Fatalf("got error %v, want parse %s: ...%s", err, p, bad.want)
			}
		})
	}
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := fixtureFS(t, "proc").Scan(ctx, FieldStat); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestRead(t *testing.T) {
	fsys := fixtureFS(t, "proc")
	t.Run("process", func(t *testing.T) {
		got, err := fsys.Read(1004901, FieldAll)
		if err != nil {
			t.Fatal(err)
		}
		want := fixtureProcs[12]
		want.Fields = FieldAll
		want.StartTime = fixtureStart
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got  %+v\nwant %+v", got, want)
		}
		if got.RSS() != 300*kB {
			t.Errorf("RSS = %d", got.RSS())
		}
	})
	gone := map[string]struct {
		pid    int
		fields Field
	}{
		"no directory":          {pid: 4242, fields: FieldStat},
		"files vanished":        {pid: 1005001, fields: FieldStat | FieldStatus},
		"reaped zombie":         {pid: 1005002, fields: FieldStatus},
		"not a process":         {pid: 99, fields: 0},
		"vanished without stat": {pid: 1005001, fields: FieldOOMScore},
	}
	for name, tc := range gone {
		t.Run(name, func(t *testing.T) {
			_, err := fsys.Read(tc.pid, tc.fields)
			if !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("got %v, want an error matching fs.ErrNotExist", err)
			}
			var g *GoneError
			if !errors.As(err, &g) || !strings.HasPrefix(g.Path, fsys.Path(tc.pid, "")) {
				t.Errorf("got %#v, want a *GoneError under %s", err, fsys.Path(tc.pid, ""))
			}
		})
	}
	t.Run("invalid pid", func(t *testing.T) {
		if _, err := fsys.Read(0, FieldStat); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("malformed", func(t *testing.T) {
		_, err := fixtureFS(t, "malformed-status").Read(123, FieldStatus)
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Path != "testdata/malformed-status/123/status" {
			t.Fatalf("got %v", err)
		}
	})
}

func TestNewFS(t *testing.T) {
	if _, err := NewFS("testdata/nope"); err == nil || !strings.Contains(err.Error(), "testdata/nope") ||
		!errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing root: got %v", err)
	}
	if _, err := NewFS("testdata/proc/uptime"); err == nil || !strings.Contains(err.Error(), "testdata/proc/uptime: not a directory") {
		t.Errorf("file as root: got %v", err)
	}
	fsys, err := NewFS("testdata/proc/")
	if err != nil {
		t.Fatal(err)
	}
	if got := fsys.Path(7, "stat"); got != "testdata/proc/7/stat" {
		t.Errorf("Path = %q", got)
	}
	if got := fsys.Path(7, ""); got != "testdata/proc/7" {
		t.Errorf("Path = %q", got)
	}
}

func TestMeminfo(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, "meminfo"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fsys, err := NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fsys.Meminfo(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: got %v", err)
	}
	write("MemTotal: 8 kB\nMemFree: 4 kB\nMemAvailable: 6 kB\nSwapTotal: 2 kB\nSwapFree: 1 kB\n")
	m, err := fsys.Meminfo()
	if want := (Meminfo{8 * kB, 4 * kB, 6 * kB, 2 * kB, 1 * kB}); err != nil || m != want {
		t.Errorf("got %+v, %v; want %+v", m, err, want)
	}
	write("MemTotal: x kB\n")
	if _, err := fsys.Meminfo(); err == nil || !strings.HasPrefix(err.Error(), "parse "+filepath.Join(dir, "meminfo")+": ") {
		t.Errorf("malformed: got %v", err)
	}
	if _, err := fixtureFS(t, "proc").Meminfo(); err != nil {
		t.Errorf("fixture: %v", err)
	}
}

func TestWriteOOMScoreAdj(t *testing.T) {
	dir := copyTree(t, "testdata/proc")
	fsys, err := NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, adj := range []int{1000, -1000, 0, 900} {
		if err := fsys.WriteOOMScoreAdj(1004927, adj); err != nil {
			t.Fatal(err)
		}
		if p, err := fsys.Read(1004927, FieldOOMScoreAdj); err != nil || p.OOMScoreAdj != adj {
			t.Errorf("after writing %d: got %d, %v", adj, p.OOMScoreAdj, err)
		}
	}
	for _, adj := range []int{1001, -1001} {
		if err := fsys.WriteOOMScoreAdj(1004927, adj); err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("adj %d: got %v", adj, err)
		}
	}
	err = fsys.WriteOOMScoreAdj(4242, 5)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), fsys.Path(4242, "oom_score_adj")) {
		t.Errorf("missing process: got %v", err)
	}
	if _, serr := os.Stat(fsys.Path(4242, "")); serr == nil {
		t.Errorf("writing to a missing process created its directory")
	}
}

func pids(procs []Proc) []int {
	out := make([]int, len(procs))
	for i, p := range procs {
		out[i] = p.PID
	}
	return out
}

// copyTree copies a fixture tree into a temporary directory that a test
// may change.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "proc")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestReadLargeCmdline grows the reader's buffer past its first 4 KiB, as a
// Java or Python command line can.
func TestReadLargeCmdline(t *testing.T) {
	dir := copyTree(t, "testdata/proc")
	args := make([]string, 3000)
	for i := range args {
		args[i] = "-Dprop" + strings.Repeat("x", i%7)
	}
	content := strings.Join(args, "\x00") + "\x00"
	if err := os.WriteFile(filepath.Join(dir, "1231", "cmdline"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	fsys, err := NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	procs, err := fsys.WithWorkers(2).Scan(context.Background(), FieldCmdline|FieldStat)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		i := slices.IndexFunc(fixtureProcs, func(q Proc) bool { return q.PID == p.PID })
		if i < 0 {
			continue // the vanished and reaped processes
		}
		want := fixtureProcs[i].Cmdline
		if p.PID == 1231 {
			want = args
		}
		if !reflect.DeepEqual(p.Cmdline, want) {
			t.Errorf("pid %d: cmdline of %d args, want %d", p.PID, len(p.Cmdline), len(want))
		}
	}
}

// SetOOMScoreAdj writes only to the process that started when the caller
// saw it start: a pid that names another process is left alone.
func TestSetOOMScoreAdjChecksIdentity(t *testing.T) {
	dir := copyTree(t, "testdata/proc")
	fsys, err := NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := fsys.SetOOMScoreAdj(1004927, fixtureStart, 900); err != nil {
		t.Fatal(err)
	}
	if p, _ := fsys.Read(1004927, FieldOOMScoreAdj); p.OOMScoreAdj != 900 {
		t.Fatalf("same process: adj %d, want 900", p.OOMScoreAdj)
	}
	err = fsys.SetOOMScoreAdj(1004927, fixtureStart-1, 500)
	if !errors.Is(err, ErrPIDReused) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("other start time: got %v, want ErrPIDReused matching fs.ErrNotExist", err)
	}
	if p, _ := fsys.Read(1004927, FieldOOMScoreAdj); p.OOMScoreAdj != 900 {
		t.Fatalf("a process with another start time was written: adj %d", p.OOMScoreAdj)
	}
	if err := fsys.SetOOMScoreAdj(4242, 1, 5); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing process: got %v", err)
	}
}
