package cgroup

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const (
	uid2 = "7a1f0c2e-5b3d-4e6f-8a9b-0c1d2e3f4a5b"
	uid3 = "c0ffee00-1111-2222-3333-444455556666"
	cid2 = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0"
	cid3 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

	// Cgroup paths in the fixture trees (testdata/mkfixtures.py).
	v1Ctr       = "/kubepods/burstable/pod" + uid + "/" + cid
	v1Ctr2      = "/kubepods/burstable/pod" + uid + "/" + cid2
	v1NoSwapAcc = "/kubepods/besteffort/pod" + uid2 + "/" + cid3
	v1Stalled   = "/kubepods/pod" + uid3 + "/" + cid
	v2Pod       = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice"
	v2Ctr       = v2Pod + "/cri-containerd-" + cid + ".scope"
	v2Old       = "/kubepods.slice/kubepods-pod" + "c0ffee00_1111_2222_3333_444455556666" + ".slice/cri-containerd-" + cid3 + ".scope"
	hyPod       = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + "7a1f0c2e_5b3d_4e6f_8a9b_0c1d2e3f4a5b" + ".slice"
	hyCtr       = hyPod + "/crio-" + cid + ".scope"
	hyConmon    = hyPod + "/crio-conmon-" + cid + ".scope"
)

func fixture(t *testing.T, name string) FS {
	t.Helper()
	f, err := NewFS(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// writableFixture copies a tree so a test can write to or remove from it.
func writableFixture(t *testing.T, name string) FS {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("testdata", name))); err != nil {
		t.Fatal(err)
	}
	f, err := NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestNewFS(t *testing.T) {
	for _, tc := range []struct {
		tree string
		want Version
		str  string
	}{
		{"v1-cgroupfs", V1, "v1"},
		{"v2-systemd", V2, "v2"},
		{"v2-cgroupfs", V2, "v2"},
		{"hybrid-systemd", Hybrid, "hybrid"},
	} {
		t.Run(tc.tree, func(t *testing.T) {
			f := fixture(t, tc.tree)
			if f.Version() != tc.want || f.Version().String() != tc.str {
				t.Errorf("Version() = %v (%d), want %v", f.Version(), f.Version(), tc.str)
			}
		})
	}
	t.Run("empty dir", func(t *testing.T) {
		dir := t.TempDir()
		_, err := NewFS(dir)
		if err == nil || !strings.Contains(err.Error(), dir) {
			t.Errorf("NewFS(empty) = %v, want an error naming %s", err, dir)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := NewFS("/nonexistent/podwarden"); err == nil {
			t.Error("NewFS(missing) succeeded")
		}
	})
	if s := Version(0).String(); s != "Version(0)" {
		t.Errorf("Version(0).String() = %q", s)
	}
}

func TestDir(t *testing.T) {
	for _, tc := range []struct {
		tree, cg, want string
	}{
		{"v1-cgroupfs", "/kubepods", "testdata/v1-cgroupfs/memory/kubepods"},
		{"v1-cgroupfs", "/", "testdata/v1-cgroupfs/memory"},
		{"v2-systemd", "/kubepods.slice", "testdata/v2-systemd/kubepods.slice"},
		{"v2-systemd", "kubepods.slice/", "testdata/v2-systemd/kubepods.slice"},
		{"hybrid-systemd", "/kubepods.slice", "testdata/hybrid-systemd/memory/kubepods.slice"},
		// Dir cannot be talked out of the root.
		{"v2-systemd", "/../../etc", "testdata/v2-systemd/etc"},
	} {
		if got := fixture(t, tc.tree).Dir(tc.cg); got != tc.want {
			t.Errorf("%s: Dir(%q) = %q, want %q", tc.tree, tc.cg, got, tc.want)
		}
	}
}

func TestLimitUsage(t *testing.T) {
	for _, tc := range []struct {
		tree, cg   string
		limit      Limit
		swap       Limit
		usage      uint64
		wantErr    error // for all three calls
		errContain string
	}{
		{tree: "v1-cgroupfs", cg: "/", limit: Limit{Unlimited: true}, swap: Limit{Unlimited: true}, usage: 3221225472},
		{tree: "v1-cgroupfs", cg: "/kubepods", limit: Limit{Bytes: 8 << 30}, swap: Limit{Unlimited: true}, usage: 1 << 30},
		{tree: "v1-cgroupfs", cg: "/kubepods/burstable/pod" + uid, limit: Limit{Bytes: 512 << 20}, swap: Limit{Bytes: 256 << 20}, usage: 384 << 20},
		{tree: "v1-cgroupfs", cg: v1Ctr, limit: Limit{Bytes: 256 << 20}, swap: Limit{}, usage: 268181504},
		{tree: "v1-cgroupfs", cg: v1Ctr2, limit: Limit{Unlimited: true}, swap: Limit{Unlimited: true}, usage: 4096},
		{tree: "v1-cgroupfs", cg: v1NoSwapAcc, limit: Limit{Unlimited: true}, swap: Limit{Unlimited: true}, usage: 0},
		{tree: "v1-cgroupfs", cg: v1Stalled, limit: Limit{Bytes: 1 << 30}, swap: Limit{Bytes: 1 << 30}, usage: 1 << 30},
		{tree: "v2-systemd", cg: "/kubepods.slice", limit: Limit{Bytes: 8 << 30}, swap: Limit{Unlimited: true}, usage: 1 << 30},
		{tree: "v2-systemd", cg: v2Ctr, limit: Limit{Bytes: 256 << 20}, swap: Limit{}, usage: 268173312},
		{tree: "v2-systemd", cg: v2Ctr + "/container", limit: Limit{Unlimited: true}, swap: Limit{Unlimited: true}, usage: 268173312},
		{tree: "v2-systemd", cg: v2Old, limit: Limit{Bytes: 1 << 30}, swap: Limit{Unlimited: true}, usage: 1 << 20},
		{tree: "v2-cgroupfs", cg: "/kubepods/pod" + uid + "/crio-" + cid, limit: Limit{Bytes: 512 << 20}, swap: Limit{Unlimited: true}, usage: 1024},
		{tree: "hybrid-systemd", cg: hyCtr, limit: Limit{Unlimited: true}, swap: Limit{Unlimited: true}, usage: 96 << 20},
		{tree: "hybrid-systemd", cg: "/kubepods.slice", limit: Limit{Bytes: 8 << 30}, swap: Limit{Unlimited: true}, usage: 100 << 20},
		{tree: "v2-systemd", cg: v2Pod + "/gone.scope", wantErr: fs.ErrNotExist, errContain: "testdata/v2-systemd" + v2Pod + "/gone.scope/memory."},
		{tree: "v1-cgroupfs", cg: "/gone", wantErr: fs.ErrNotExist, errContain: "testdata/v1-cgroupfs/memory/gone/memory."},
	} {
		t.Run(tc.tree+tc.cg, func(t *testing.T) {
			f := fixture(t, tc.tree)
			limit, lerr := f.Limit(tc.cg)
			swap, serr := f.SwapLimit(tc.cg)
			usage, uerr := f.Usage(tc.cg)
			if tc.wantErr != nil {
				for _, err := range []error{lerr, serr, uerr} {
					if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.errContain) {
						t.Errorf("err = %v, want %v naming %s", err, tc.wantErr, tc.errContain)
					}
				}
				return
			}
			if lerr != nil || serr != nil || uerr != nil {
				t.Fatalf("errors: %v, %v, %v", lerr, serr, uerr)
			}
			if limit != tc.limit || swap != tc.swap || usage != tc.usage {
				t.Errorf("Limit, SwapLimit, Usage = %v, %v, %d; want %v, %v, %d", limit, swap, usage, tc.limit, tc.swap, tc.usage)
			}
		})
	}
}

func TestV2RootLimit(t *testing.T) {
	// The v2 root cgroup has no memory.max: nothing limits it.
	l, err := fixture(t, "v2-systemd").Limit("/")
	if err != nil || !l.Unlimited {
		t.Errorf("Limit(/) = %v, %v", l, err)
	}
	if s := l.String(); s != "max" {
		t.Errorf("String() = %q", s)
	}
	if s := (Limit{Bytes: 42}).String(); s != "42" {
		t.Errorf("String() = %q", s)
	}
}

func TestEvents(t *testing.T) {
	for _, tc := range []struct {
		tree, cg string
		want     Events
	}{
		{"v1-cgroupfs", v1Ctr, Events{Max: 17 + 4, OOMKill: 3}},
		{"v1-cgroupfs", v1Stalled, Events{Max: 99, UnderOOM: true, OOMKillDisabled: true}},
		{"v1-cgroupfs", "/", Events{}},
		{"v2-systemd", v2Ctr, Events{Max: 42, OOM: 2, OOMKill: 3, OOMGroupKill: 1}},
		{"v2-systemd", v2Old, Events{}},
		{"hybrid-systemd", hyCtr, Events{Max: 5, OOMKill: 1}},
	} {
		t.Run(tc.tree+tc.cg, func(t *testing.T) {
			got, err := fixture(t, tc.tree).Events(tc.cg)
			if err != nil || got != tc.want {
				t.Errorf("Events() = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	_, err := fixture(t, "v2-systemd").Events("/gone")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Events(gone) = %v, want ErrNotExist", err)
	}
}

func TestPressure(t *testing.T) {
	zero := Pressure{}
	for _, tc := range []struct {
		tree, cg string
		want     Pressure
		wantErr  error
	}{
		{tree: "v2-systemd", cg: "/", want: Pressure{
			Some: PSILine{Avg10: 1.5, Avg60: 0.75, Avg300: 0.2, Total: 123456},
			Full: PSILine{Avg10: 0.5, Avg60: 0.25, Avg300: 0.05, Total: 45678}}},
		{tree: "v2-systemd", cg: v2Ctr, want: Pressure{
			Some: PSILine{Avg10: 12.34, Avg60: 5, Avg300: 1.25, Total: 987654},
			Full: PSILine{Avg10: 10, Avg60: 4, Avg300: 1, Total: 876543}}},
		{tree: "hybrid-systemd", cg: hyCtr, want: Pressure{
			Some: PSILine{Avg10: 3, Avg60: 2, Avg300: 1, Total: 3000},
			Full: PSILine{Avg10: 1, Avg60: 0.5, Avg300: 0.25, Total: 1000}}},
		{tree: "hybrid-systemd", cg: "/", want: zero},
		// Not mirrored in the unified tree: unsupported, not "gone".
		{tree: "hybrid-systemd", cg: hyConmon, wantErr: errors.ErrUnsupported},
		{tree: "hybrid-systemd", cg: hyPod + "/gone.scope", wantErr: fs.ErrNotExist},
		{tree: "v1-cgroupfs", cg: v1Ctr, wantErr: errors.ErrUnsupported},
		{tree: "v2-systemd", cg: "/gone", wantErr: fs.ErrNotExist},
	} {
		t.Run(tc.tree+tc.cg, func(t *testing.T) {
			got, err := fixture(t, tc.tree).Pressure(tc.cg)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("Pressure() error = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("Pressure() = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestPressureNoPSI(t *testing.T) {
	f := writableFixture(t, "v2-systemd")
	if err := os.Remove(filepath.Join(f.Dir(v2Ctr), "memory.pressure")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Pressure(v2Ctr); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Pressure() without the file = %v, want ErrUnsupported", err)
	}
}

func TestOOMGroup(t *testing.T) {
	for _, tc := range []struct {
		tree, cg string
		want     bool
		wantErr  error
	}{
		{tree: "v2-systemd", cg: v2Ctr, want: true},
		{tree: "v2-systemd", cg: "/kubepods.slice", want: false},
		{tree: "v2-cgroupfs", cg: "/kubepods/pod" + uid + "/crio-" + cid, want: true},
		{tree: "v2-systemd", cg: v2Old, wantErr: errors.ErrUnsupported},
		{tree: "v2-systemd", cg: "/gone", wantErr: fs.ErrNotExist},
		{tree: "v1-cgroupfs", cg: v1Ctr, wantErr: errors.ErrUnsupported},
		{tree: "hybrid-systemd", cg: hyCtr, wantErr: errors.ErrUnsupported},
	} {
		t.Run(tc.tree+tc.cg, func(t *testing.T) {
			got, err := fixture(t, tc.tree).OOMGroup(tc.cg)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("OOMGroup() error = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("OOMGroup() = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestSetOOMGroup(t *testing.T) {
	f := writableFixture(t, "v2-systemd")
	for _, on := range []bool{false, true, false} {
		if err := f.SetOOMGroup(v2Ctr, on); err != nil {
			t.Fatalf("SetOOMGroup(%v): %v", on, err)
		}
		b, err := os.ReadFile(filepath.Join(f.Dir(v2Ctr), "memory.oom.group"))
		if got, want := string(b), map[bool]string{false: "0", true: "1"}[on]; err != nil || got != want {
			t.Errorf("file holds %q, %v; want %q", got, err, want)
		}
	}
	// Old kernel: the write must not create the file.
	if err := f.SetOOMGroup(v2Old, false); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("SetOOMGroup(no file) = %v, want ErrUnsupported", err)
	}
	if _, err := os.Stat(filepath.Join(f.Dir(v2Old), "memory.oom.group")); err == nil {
		t.Error("SetOOMGroup created memory.oom.group")
	}
	// The cgroup was removed: "gone", and it names the file.
	err := f.SetOOMGroup(v2Pod+"/cri-containerd-gone.scope", false)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "cri-containerd-gone.scope/memory.oom.group") {
		t.Errorf("SetOOMGroup(gone) = %v, want ErrNotExist naming the file", err)
	}
	// A write that does not take is an error: /dev/null swallows it.
	file := filepath.Join(f.Dir(v2Ctr), "memory.oom.group")
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/null", file); err != nil {
		t.Fatal(err)
	}
	if err := f.SetOOMGroup(v2Ctr, true); err == nil {
		t.Error("SetOOMGroup into /dev/null succeeded")
	}
	if err := fixture(t, "v1-cgroupfs").SetOOMGroup(v1Ctr, false); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("v1 SetOOMGroup = %v, want ErrUnsupported", err)
	}
}

func TestDotDotRejected(t *testing.T) {
	f := fixture(t, "v2-systemd")
	cg := "/../../kubepods.slice"
	errs := map[string]error{}
	_, errs["OOMGroup"] = f.OOMGroup(cg)
	errs["SetOOMGroup"] = f.SetOOMGroup(cg, false)
	_, errs["Limit"] = f.Limit(cg)
	_, errs["SwapLimit"] = f.SwapLimit(cg)
	_, errs["Usage"] = f.Usage(cg)
	_, errs["Events"] = f.Events(cg)
	_, errs["Pressure"] = f.Pressure(cg)
	_, errs["Procs"] = f.Procs(cg, false)
	_, errs["ProcsRecursive"] = f.Procs(cg, true)
	_, errs["Children"] = f.Children(cg)
	errs["Walk"] = f.Walk(context.Background(), cg, func(string) error { return nil })
	for name, err := range errs {
		if err == nil || !strings.Contains(err.Error(), `".."`) {
			t.Errorf("%s(%q) = %v, want a \"..\" error", name, cg, err)
		}
	}
	if _, err := f.Limit("/a\x00b"); err == nil {
		t.Error("Limit with NUL succeeded")
	}
}

func TestChildren(t *testing.T) {
	f := fixture(t, "v2-systemd")
	kids, err := f.Children(v2Pod)
	want := []string{v2Pod + "/cri-containerd-" + cid2 + ".scope", v2Pod + "/cri-containerd-" + cid + ".scope"}
	slices.Sort(want)
	if err != nil || !slices.Equal(kids, want) {
		t.Errorf("Children() = %q, %v; want %q", kids, err, want)
	}
	kids, err = f.Children("/")
	if err != nil || !slices.Equal(kids, []string{"/kubepods.slice", "/system.slice"}) {
		t.Errorf("Children(/) = %q, %v", kids, err)
	}
	if _, err := f.Children("/gone"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Children(gone) = %v", err)
	}
}

func TestProcs(t *testing.T) {
	for _, tc := range []struct {
		tree, cg  string
		recursive bool
		want      []int
	}{
		{"v2-systemd", v2Ctr, false, []int{4242, 4243}},
		{"v2-systemd", v2Ctr, true, []int{4242, 4243, 4244}},
		{"v2-systemd", v2Pod, false, nil},
		{"v2-systemd", v2Pod, true, []int{4242, 4243, 4244, 4300}},
		{"v2-systemd", "/", true, []int{1, 2, 4242, 4243, 4244, 4300, 6000, 700}},
		{"v1-cgroupfs", "/kubepods", true, []int{5000, 4242, 4243, 4300, 6000}},
		{"hybrid-systemd", hyPod, true, []int{4242, 4241}},
	} {
		t.Run(tc.tree+tc.cg, func(t *testing.T) {
			got, err := fixture(t, tc.tree).Procs(tc.cg, tc.recursive)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("Procs(%v) = %v, %v; want %v", tc.recursive, got, err, tc.want)
			}
		})
	}
	f := writableFixture(t, "v2-systemd")
	// A pid listed twice (v1 threads split across cgroups) counts once.
	if err := os.WriteFile(filepath.Join(f.Dir(v2Ctr+"/container"), "cgroup.procs"), []byte("4242\n4244\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Procs(v2Ctr, true); err != nil || !slices.Equal(got, []int{4242, 4243, 4244}) {
		t.Errorf("Procs(dup) = %v, %v", got, err)
	}
	// A child whose cgroup.procs vanished is skipped; the asked-for one is not.
	if err := os.Remove(filepath.Join(f.Dir(v2Ctr+"/container"), "cgroup.procs")); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Procs(v2Ctr, true); err != nil || !slices.Equal(got, []int{4242, 4243}) {
		t.Errorf("Procs(child gone) = %v, %v", got, err)
	}
	if _, err := f.Procs(v2Ctr+"/container", true); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Procs(self gone) = %v, want ErrNotExist", err)
	}
	if err := os.WriteFile(filepath.Join(f.Dir(v2Ctr), "cgroup.procs"), []byte("12\nabc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Procs(v2Ctr, false); err == nil || !strings.Contains(err.Error(), "cgroup.procs") {
		t.Errorf("Procs(bad) = %v", err)
	}
}

func TestWalk(t *testing.T) {
	f := fixture(t, "v2-cgroupfs")
	var got []string
	err := f.Walk(context.Background(), "/", func(cg string) error {
		got = append(got, cg)
		if strings.HasSuffix(cg, "/besteffort") {
			return fs.SkipDir
		}
		return nil
	})
	want := []string{
		"/",
		"/kubepods",
		"/kubepods/besteffort",
		"/kubepods/pod" + uid,
		"/kubepods/pod" + uid + "/crio-" + cid,
		"/kubepods/pod" + uid + "/crio-conmon-" + cid,
	}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Walk() visited\n%q, %v\nwant\n%q", got, err, want)
	}

	stop := errors.New("stop")
	if err := f.Walk(context.Background(), "/", func(string) error { return stop }); err != stop {
		t.Errorf("Walk() = %v, want fn's error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.Walk(ctx, "/", func(string) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Walk(cancelled) = %v", err)
	}
	if err := f.Walk(context.Background(), "/gone", func(string) error { return nil }); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "gone") {
		t.Errorf("Walk(gone) = %v, want ErrNotExist naming it", err)
	}
}

func TestWalkVanishing(t *testing.T) {
	f := writableFixture(t, "v2-cgroupfs")
	pod := "/kubepods/pod" + uid
	ctr, conmon := pod+"/crio-"+cid, pod+"/crio-conmon-"+cid
	var got []string
	err := f.Walk(context.Background(), pod, func(cg string) error {
		got = append(got, cg)
		if cg == pod {
			// Both children are listed by now; the container exits.
			return os.RemoveAll(f.Dir(ctr))
		}
		return nil
	})
	if want := []string{pod, conmon}; err != nil || !slices.Equal(got, want) {
		t.Errorf("Walk() visited %q, %v; want %q", got, err, want)
	}
}
