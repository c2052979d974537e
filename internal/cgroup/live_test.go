//go:build linux

package cgroup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hogEnv makes the test binary a memory hog instead of running tests: the
// live test moves it into a cgroup first so its allocations are charged
// there (v1 does not move charges with a task).
const hogEnv = "PODWARDEN_CGROUP_HOG"

func TestMain(m *testing.M) {
	if os.Getenv(hogEnv) == "1" {
		hog()
		return
	}
	os.Exit(m.Run())
}

// hog waits for a line on stdin, touches 16 MiB and says "ready", then on
// a second line touches memory until the kernel kills it.
func hog() {
	in := bufio.NewReader(os.Stdin)
	var keep [][]byte
	touch := func(mib int) {
		for range mib {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			keep = append(keep, b)
		}
	}
	if _, err := in.ReadString('\n'); err != nil {
		os.Exit(2)
	}
	touch(16)
	fmt.Println("ready")
	if _, err := in.ReadString('\n'); err != nil {
		os.Exit(2)
	}
	touch(1024)
	fmt.Println("survived", len(keep))
	os.Exit(3)
}

// liveFS returns the host's cgroup FS when it has a v1 memory controller we
// may write to, and skips otherwise.
func liveFS(t *testing.T) FS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("live cgroup v1 test needs root to create cgroups")
	}
	f, err := NewFS("/sys/fs/cgroup")
	if err != nil {
		t.Skipf("no cgroup hierarchy at /sys/fs/cgroup: %v", err)
	}
	if f.Version() == V2 {
		t.Skip("host runs cgroup v2 only: no v1 memory controller (v2 is covered by fixtures and the VM tests)")
	}
	return f
}

// mkcg creates a cgroup and removes it (and anything left in it) at the end
// of the test. Cleanups run last-in first-out, so children go first.
func mkcg(t *testing.T, f FS, cg string) {
	t.Helper()
	if err := os.Mkdir(f.Dir(cg), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Killed tasks leave the cgroup asynchronously; rmdir says EBUSY
		// until they have.
		var err error
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if err = os.Remove(f.Dir(cg)); err == nil || errors.Is(err, fs.ErrNotExist) {
				return
			}
		}
		t.Errorf("removing test cgroup %s: %v", cg, err)
	})
}

func writeFile(t *testing.T, file, data string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(data), 0); err != nil {
		t.Fatal(err)
	}
}

// startIn starts cmd and moves it into cg; it is killed at cleanup.
func startIn(t *testing.T, f FS, cg string, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	writeFile(t, filepath.Join(f.Dir(cg), "cgroup.procs"), strconv.Itoa(cmd.Process.Pid))
}

func hostHasSwap(t *testing.T) bool {
	b, err := os.ReadFile("/proc/swaps")
	if err != nil {
		t.Fatal(err)
	}
	// A header line, then one line per active swap area.
	return len(strings.Split(strings.TrimSpace(string(b)), "\n")) > 1
}

func TestLiveV1(t *testing.T) {
	f := liveFS(t)
	cg := fmt.Sprintf("/podwarden-test-%d", os.Getpid())
	mkcg(t, f, cg)
	const limit = 64 << 20
	writeFile(t, filepath.Join(f.Dir(cg), "memory.limit_in_bytes"), strconv.Itoa(limit))
	// With swap, also cap memory+swap so the hog cannot swap its way out.
	// Without swap, leave memsw alone: a hit on the memsw limit is not
	// counted in any failcnt from 6.13 on, and Events().Max is checked.
	memsw := filepath.Join(f.Dir(cg), "memory.memsw.limit_in_bytes")
	haveMemsw := isFile(memsw) && hostHasSwap(t)
	if haveMemsw {
		writeFile(t, memsw, strconv.Itoa(limit))
	}

	if l, err := f.Limit(cg); err != nil || l != (Limit{Bytes: limit}) {
		t.Errorf("Limit() = %v, %v; want %d", l, err, limit)
	}
	wantSwap := Limit{Unlimited: true}
	if haveMemsw {
		wantSwap = Limit{}
	}
	if l, err := f.SwapLimit(cg); err != nil || l != wantSwap {
		t.Errorf("SwapLimit() = %v, %v; want %v", l, err, wantSwap)
	}
	if l, err := f.Limit("/"); err != nil || !l.Unlimited {
		t.Errorf("Limit(/) = %v, %v; want unlimited", l, err)
	}
	if _, err := f.OOMGroup(cg); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("OOMGroup() = %v, want ErrUnsupported", err)
	}
	if err := f.SetOOMGroup(cg, false); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("SetOOMGroup() = %v, want ErrUnsupported", err)
	}
	// Only systemd mirrors cgroups into the unified tree; ours is not.
	if _, err := f.Pressure(cg); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Pressure() = %v, want ErrUnsupported", err)
	}

	sleep := exec.Command("sleep", "600")
	startIn(t, f, cg, sleep)
	if pids, err := f.Procs(cg, false); err != nil || !slices.Equal(pids, []int{sleep.Process.Pid}) {
		t.Errorf("Procs() = %v, %v; want [%d]", pids, err, sleep.Process.Pid)
	}
	if ev, err := f.Events(cg); err != nil || ev != (Events{}) {
		t.Errorf("Events() before OOM = %+v, %v", ev, err)
	}

	t.Run("usage and OOM kill", func(t *testing.T) {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), hogEnv+"=1")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		startIn(t, f, cg, cmd)
		out := bufio.NewReader(stdout)
		if _, err := io.WriteString(stdin, "go\n"); err != nil {
			t.Fatal(err)
		}
		if line, err := out.ReadString('\n'); err != nil || line != "ready\n" {
			t.Fatalf("hog said %q, %v", line, err)
		}
		if u, err := f.Usage(cg); err != nil || u < 16<<20 || u > limit {
			t.Errorf("Usage() = %d, %v; want 16 MiB..%d", u, err, limit)
		}
		if _, err := io.WriteString(stdin, "go\n"); err != nil {
			t.Fatal(err)
		}
		rest, _ := io.ReadAll(out)
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("hog ended with %v (output %q), want SIGKILL from the memcg OOM killer", err, rest)
		}
		ev, err := f.Events(cg)
		if err != nil || ev.OOMKill != 1 || ev.Max == 0 && !haveMemsw || ev.UnderOOM || ev.OOMKillDisabled {
			t.Errorf("Events() after OOM = %+v, %v; want OOMKill 1 and Max > 0", ev, err)
		}
		// The OOM killer took the hog, not the small sleep.
		if pids, err := f.Procs(cg, false); err != nil || !slices.Equal(pids, []int{sleep.Process.Pid}) {
			t.Errorf("Procs() after OOM = %v, %v; want [%d]", pids, err, sleep.Process.Pid)
		}
	})

	t.Run("walk while a child is removed", func(t *testing.T) {
		for _, c := range []string{"a", "b", "c"} {
			mkcg(t, f, cg+"/"+c)
		}
		writeFile(t, filepath.Join(f.Dir(cg+"/a"), "cgroup.procs"), strconv.Itoa(sleep.Process.Pid))
		// Registered after mkcg, so it runs before a's rmdir.
		t.Cleanup(func() { writeFile(t, filepath.Join(f.Dir(cg), "cgroup.procs"), strconv.Itoa(sleep.Process.Pid)) })
		kids, err := f.Children(cg)
		if want := []string{cg + "/a", cg + "/b", cg + "/c"}; err != nil || !slices.Equal(kids, want) {
			t.Errorf("Children() = %q, %v; want %q", kids, err, want)
		}
		var seen []string
		err = f.Walk(context.Background(), cg, func(c string) error {
			seen = append(seen, c)
			if c == cg {
				return os.Remove(f.Dir(cg + "/b"))
			}
			return nil
		})
		if want := []string{cg, cg + "/a", cg + "/c"}; err != nil || !slices.Equal(seen, want) {
			t.Errorf("Walk() visited %q, %v; want %q", seen, err, want)
		}
		if _, err := f.Limit(cg + "/b"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Limit(removed) = %v, want ErrNotExist", err)
		}
		if pids, err := f.Procs(cg, false); err != nil || len(pids) != 0 {
			t.Errorf("Procs(parent) = %v, %v; want none", pids, err)
		}
		if pids, err := f.Procs(cg, true); err != nil || !slices.Equal(pids, []int{sleep.Process.Pid}) {
			t.Errorf("Procs(recursive) = %v, %v; want [%d]", pids, err, sleep.Process.Pid)
		}
	})

	t.Run("write to a removed cgroup is gone", func(t *testing.T) {
		mkcg(t, f, cg+"/d")
		file := filepath.Join(f.Dir(cg+"/d"), "memory.limit_in_bytes")
		fd, err := os.OpenFile(file, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer fd.Close()
		if err := os.Remove(f.Dir(cg + "/d")); err != nil {
			t.Fatal(err)
		}
		_, err = fd.WriteString("1048576")
		if err == nil {
			t.Fatal("write to a removed cgroup succeeded")
		}
		werr := opError("write", file, err)
		t.Logf("write after rmdir: %v", werr)
		if !errors.Is(werr, fs.ErrNotExist) {
			t.Errorf("opError(%v) = %v, want it to wrap ErrNotExist", err, werr)
		}
		// By path, the same write fails with ENOENT.
		if err := write(file, "1048576"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("write(removed) = %v, want ErrNotExist", err)
		}
	})
}
