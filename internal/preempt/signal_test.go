package preempt

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"podwarden/internal/cgroup"
	"podwarden/internal/procfs"
	"podwarden/internal/syncbuf"
)

// These tests use real processes and the real kernel interfaces: pidfds,
// pidfd_send_signal, process_mrelease, PSI triggers, openat2.

func liveProc(t *testing.T) procfs.FS {
	t.Helper()
	p, err := procfs.NewFS("/proc")
	if err != nil {
		t.Skip(err)
	}
	return p
}

// child starts a shell that ignores SIGINT (a busy notebook cell) and
// waits; the ignore is inherited by the sleep it execs.
func child(t *testing.T) (*exec.Cmd, procfs.Proc) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `trap "" INT; exec sleep 1000`)
	must(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pfs := liveProc(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := pfs.Read(cmd.Process.Pid, procfs.FieldStat)
		if err == nil && p.Comm == "sleep" {
			return cmd, p
		}
		if time.Now().After(deadline) {
			t.Fatalf("child never exec'd sleep: %+v %v", p, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPidfdLadder(t *testing.T) {
	pfs := liveProc(t)
	cmd, p := child(t)
	s := pidfdSignaler{proc: pfs}
	h, err := s.Open(p)
	if errors.Is(err, unix.ENOSYS) {
		t.Skip("no pidfd_open on this kernel")
	}
	must(t, err)
	defer h.Close()
	if h.Fd() < 0 {
		t.Fatal("pidfd handle without an fd")
	}
	must(t, h.Signal(unix.SIGINT))
	time.Sleep(200 * time.Millisecond)
	if h.Exited() {
		t.Fatal("exited on SIGINT, which it ignores")
	}
	must(t, h.Signal(unix.SIGKILL))
	// The pidfd polls readable once the process has exited, before it is
	// reaped.
	fds := []unix.PollFd{{Fd: int32(h.Fd()), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, 30_000); err != nil || n != 1 {
		t.Fatalf("poll on the pidfd: %d, %v", n, err)
	}
	if !h.Exited() {
		t.Error("Exited false after the pidfd polled readable")
	}
	if err := h.Mrelease(); err != nil && !errors.Is(err, unix.EINVAL) {
		t.Errorf("process_mrelease on a dead process: %v", err)
	}
	cmd.Wait()
	if err := h.Signal(unix.SIGTERM); !errors.Is(err, errExited) {
		t.Errorf("signal after reaping: %v, want errExited", err)
	}
}

func TestPidfdOpenChecksIdentity(t *testing.T) {
	pfs := liveProc(t)
	_, p := child(t)
	s := pidfdSignaler{proc: pfs}
	p.StartTime++ // the pid now names "another" process
	if _, err := s.Open(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open with a stale start time: %v, want ErrNotExist", err)
	}
	if _, err := s.Open(procfs.Proc{PID: 1 << 22}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a pid that does not exist: %v", err)
	}
}

func TestKillHandleFallback(t *testing.T) {
	pfs := liveProc(t)
	cmd, p := child(t)
	h := &killHandle{pid: p.PID, start: p.StartTime, proc: pfs}
	must(t, h.Signal(unix.SIGTERM))
	cmd.Wait()
	if !h.Exited() {
		t.Error("Exited false after the child was reaped")
	}
	if err := h.Signal(unix.SIGKILL); !errors.Is(err, errExited) {
		t.Errorf("signal to a reaped pid: %v, want errExited (never a recycled pid)", err)
	}
}

func TestWriteInRootStaysInside(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "tmp"), 0o755))
	must(t, writeInRoot(root, "/tmp/podwarden-oom.txt", "hello\n"))
	if b, _ := os.ReadFile(filepath.Join(root, "tmp/podwarden-oom.txt")); string(b) != "hello\n" {
		t.Errorf("message file holds %q", b)
	}
	// A container pointing the path at a host file: the absolute symlink
	// resolves inside the root, where the target's directory does not
	// exist, so nothing outside is touched.
	must(t, os.Symlink(filepath.Join(outside, "victim"), filepath.Join(root, "tmp/evil")))
	if err := writeInRoot(root, "/tmp/evil", "x"); err == nil {
		if _, err := os.Stat(filepath.Join(outside, "victim")); err == nil {
			t.Fatal("wrote through a symlink to a file outside the root")
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "victim")); err == nil {
		t.Fatal("wrote outside the root")
	}
	if err := writeInRoot(root, "/missing/dir/file", "x"); err == nil {
		t.Error("a missing directory was created")
	}
}

// TestRunOnThisHost starts the engine on the host's real /proc and cgroup
// tree with no targets: it must arm what the kernel allows (this host:
// PSI triggers in multiples of 2 s without CAP_SYS_RESOURCE; cgroup v1 has
// no per-container pressure), say so, act on nothing, and stop with ctx.
func TestRunOnThisHost(t *testing.T) {
	pfs := liveProc(t)
	cfs, err := cgroup.NewFS("/sys/fs/cgroup")
	if err != nil {
		t.Skip(err)
	}
	logs := &syncbuf.Buffer{}
	e, err := New(Config{Policy: defaultEnabled(), Proc: pfs, Cgroups: cfs, Targets: func() ([]Target, uint64) { return nil, 0 },
		Log: slog.New(slog.NewTextHandler(logs, nil))})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "preempt engine running") {
		if time.Now().After(deadline) {
			t.Fatalf("no start-up line:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	// The engine's thread, and only it, runs at nice -20 (this host's
	// root may raise it), and gives it up with Run.
	raised := !strings.Contains(logs.String(), "cannot raise the engine's CPU priority")
	if n := threadsAtNice(t, enginePriority); raised && n != 1 {
		t.Errorf("%d threads at nice %d while the engine runs, want its one", n, enginePriority)
	}
	cancel()
	select {
	case err := <-done:
		must(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	// The locked thread exits with the goroutine; give the runtime a moment.
	for end := time.Now().Add(30 * time.Second); threadsAtNice(t, enginePriority) != 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("a thread of the test process is still at nice %d after Run returned", enginePriority)
		}
	}
	out := logs.String()
	t.Logf("%s", out)
	if _, err := os.Stat("/proc/pressure/memory"); err == nil && !strings.Contains(out, "node_pressure=\"psi trigger") && !strings.Contains(out, "node_pressure=\"polling") {
		t.Errorf("start-up line does not say how node pressure is watched:\n%s", out)
	}
	if cfs.Version() != cgroup.V2 && !strings.Contains(out, "container_pressure=\"none (cgroup") {
		t.Errorf("start-up line does not say per-container pressure is unavailable on %v:\n%s", cfs.Version(), out)
	}
}

// threadsAtNice counts this process's threads whose nice value (stat field
// 19) is nice.
func threadsAtNice(t *testing.T, nice int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	must(t, err)
	n := 0
	for _, ent := range ents {
		b, err := os.ReadFile(filepath.Join("/proc/self/task", ent.Name(), "stat"))
		if err != nil {
			continue // exited
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 16 && f[16] == strconv.Itoa(nice) {
			n++
		}
	}
	return n
}
