package preempt

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"podwarden/internal/cgroup"
	"podwarden/internal/policy"
	"podwarden/internal/procfs"
	"podwarden/internal/target"
)

// Live tests: what the choice reads of real processes, where it depends
// on the kernel (which memory counts as RssAnon and which as RssShmem,
// what a real fork storm's tree and an inner pid namespace look like in
// /proc) and on a real cgroup v1 memory hierarchy on this host.

// helperEnv makes the test binary a helper process (TestLiveHelper).
const helperEnv = "PODWARDEN_PREEMPT_HELPER"

// init names a helper process as a hostile pod's process would:
// prctl(PR_SET_NAME) on its main thread, whose name is the process's comm.
// PR_SET_NAME names only the calling thread, and a test function runs on
// whichever thread its goroutine got (the name landed on another thread
// at random, failing TestLiveShmemIsNotPrivate); init runs on the main
// thread. The name is the last word after the sizes: "anon 64
// jupyter-lab", "spawn 6 40 make".
func init() {
	f := strings.Fields(os.Getenv(helperEnv))
	if n := 3; len(f) > 0 && (f[0] == "spawn" && len(f) > 3 || f[0] != "spawn" && len(f) > 2) {
		if f[0] == "spawn" {
			n = 4
		}
		name, _ := unix.BytePtrFromString(f[n-1])
		_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(name)), 0, 0, 0)
	}
}

// TestLiveHelper is not a test: run with helperEnv set, it is the process
// the live tests watch. "anon MiB" and "shm MiB" wait for a line on stdin,
// then fill MiB of private anonymous memory or of a /dev/shm file mapped
// shared, say "grown" and sleep; "anon-now MiB" fills at once; "spawn N
// MiB" waits for a line, then forks N "anon-now" children, three a second;
// "storm N" waits for a line, says "grown" and forks N sleeps, 100 a second.
// An optional "name" sets comm (prctl), as a hostile pod would.
func TestLiveHelper(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process only")
	}
	f := strings.Fields(spec)
	mib, _ := strconv.Atoi(f[1])
	wait := func() { _, _ = bufio.NewReader(os.Stdin).ReadString('\n') }
	switch f[0] {
	case "anon":
		fmt.Println("ready")
		wait()
		fill(mib, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, -1)
	case "anon-now":
		fill(mib, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, -1)
	case "shm":
		fmt.Println("ready")
		wait()
		name := fmt.Sprintf("/dev/shm/podwarden-live-%d", os.Getpid())
		fd, err := unix.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o600)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		// Gone from the namespace at once: the pages stay charged while
		// mapped and go with the process, even when it is SIGKILLed.
		_ = unix.Unlink(name)
		_ = unix.Ftruncate(fd, int64(mib)<<20)
		fill(mib, unix.MAP_SHARED, fd)
	case "spawn":
		n := mib
		child, _ := strconv.Atoi(f[2])
		fmt.Println("ready")
		wait()
		for i := 0; i < n; i++ {
			c := exec.Command(os.Args[0], "-test.run=^TestLiveHelper$")
			c.Env = append(os.Environ(), fmt.Sprintf("%s=anon-now %d cc1", helperEnv, child))
			if err := c.Start(); err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			time.Sleep(330 * time.Millisecond)
		}
	case "storm":
		// A parent that never stops forking: a sleep every 10 ms, up to
		// MiB of them (the count), for the stop to race against.
		fmt.Println("ready")
		wait()
		fmt.Println("grown")
		for range mib {
			_ = exec.Command("sleep", "3600").Start()
			time.Sleep(10 * time.Millisecond)
		}
	}
	fmt.Println("grown")
	time.Sleep(time.Hour)
}

// fill maps mib and touches every page, so it is resident.
func fill(mib int, flags, fd int) {
	b, err := unix.Mmap(fd, 0, mib<<20, unix.PROT_READ|unix.PROT_WRITE, flags)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
}

// helper is a running helper process.
type helper struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// startHelper starts a helper, optionally through a wrapper (argv before
// the test binary: unshare ...), and waits for its "ready".
func startHelper(t *testing.T, spec string, wrap ...string) *helper {
	t.Helper()
	argv := append(slices.Clone(wrap), os.Args[0], "-test.run=^TestLiveHelper$")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), helperEnv+"="+spec)
	in, err := cmd.StdinPipe()
	must(t, err)
	out, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	h := &helper{cmd: cmd, in: in, out: bufio.NewReader(out)}
	h.expect(t, "ready")
	return h
}

func (h *helper) expect(t *testing.T, want string) {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		for {
			l, err := h.out.ReadString('\n')
			if err != nil {
				got <- "EOF: " + err.Error()
				return
			}
			if l = strings.TrimSpace(l); l == want || strings.HasPrefix(l, "error") {
				got <- l
				return
			}
		}
	}()
	select {
	case l := <-got:
		if l != want {
			t.Fatalf("helper %v said %q, want %q", h.cmd.Args, l, want)
		}
	case <-time.After(2 * time.Minute): // a loaded machine
		t.Fatalf("helper %v: no %q within 2 minutes", h.cmd.Args, want)
	}
}

func (h *helper) grow(t *testing.T) {
	t.Helper()
	_, err := io.WriteString(h.in, "go\n")
	must(t, err)
	h.expect(t, "grown")
}

func realProc(t *testing.T) procfs.FS {
	t.Helper()
	pfs, err := procfs.NewFS("/proc")
	must(t, err)
	return pfs
}

func readAll(t *testing.T, pfs procfs.FS, pids ...int) []procfs.Proc {
	t.Helper()
	var out []procfs.Proc
	for _, pid := range pids {
		p, err := pfs.Read(pid, victimFields|procfs.FieldCmdline)
		must(t, err)
		out = append(out, p)
	}
	return out
}

// TestLiveShmemIsNotPrivate: a real process filling a /dev/shm file is
// resident as RssShmem, not RssAnon, so it is never the culprit; a real
// hog renamed jupyter-lab with prctl is, by its RssAnon.
func TestLiveShmemIsNotPrivate(t *testing.T) {
	pfs := realProc(t)
	hog := startHelper(t, "anon 64 jupyter-lab")
	shm := startHelper(t, "shm 64")
	pids := []int{hog.cmd.Process.Pid, shm.cmd.Process.Pid}
	ph := &procHist{}
	t0 := time.Now()
	ph.add(t0, readAll(t, pfs, pids...), time.Minute)
	hog.grow(t)
	shm.grow(t)
	now := t0.Add(2 * time.Second)
	procs := readAll(t, pfs, pids...)
	ph.add(now, procs, time.Minute)
	h, s := procs[0], procs[1]
	t.Logf("hog %q: RssAnon %d MiB, RssShmem %d MiB; shm filler: RssAnon %d MiB, RssShmem %d MiB",
		h.Comm, h.RSSAnon>>20, h.RSSShmem>>20, s.RSSAnon>>20, s.RSSShmem>>20)
	if h.Comm != "jupyter-lab" || h.RSSAnon < 60<<20 {
		t.Errorf("hog: comm %q, RssAnon %d MiB; want jupyter-lab with 64 MiB anon", h.Comm, h.RSSAnon>>20)
	}
	if s.RSSShmem < 60<<20 || private(s) > 32<<20 {
		t.Errorf("shm filler: RssShmem %d MiB, private %d MiB; want 64 MiB shmem and little private", s.RSSShmem>>20, private(s)>>20)
	}
	a := attribute(procs, ph, now, 10*time.Second, 0, policy.DefaultKeep, true)
	if a.head == nil || a.head.PID != h.PID || a.family {
		t.Fatalf("culprit %+v, want the renamed hog %d alone", a.head, h.PID)
	}
	if g, _ := ph.growth(s, now, 10*time.Second); g > 32<<20 {
		t.Errorf("the shm filler grew %d MiB of private memory", g>>20)
	}
}

// liveCgroup makes a cgroup v1 memory cgroup for the test and moves pids
// into it; everything in it is killed and the cgroup removed at the end.
func liveCgroup(t *testing.T) (cgroup.FS, string) {
	t.Helper()
	const memRoot = "/sys/fs/cgroup/memory"
	if _, err := os.Stat(filepath.Join(memRoot, "memory.limit_in_bytes")); err != nil {
		t.Skipf("no cgroup v1 memory controller at %s: %v", memRoot, err)
	}
	cg := fmt.Sprintf("/podwarden-preempt-live-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-"))
	dir := filepath.Join(memRoot, cg)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a memory cgroup (not root?): %v", err)
	}
	cfs, err := cgroup.NewFS("/sys/fs/cgroup")
	must(t, err)
	t.Cleanup(func() {
		for range 100 {
			pids, _ := cfs.Procs(cg, true)
			if len(pids) == 0 {
				break
			}
			for _, pid := range pids {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err := os.Remove(dir); err != nil {
			t.Logf("removing %s: %v", dir, err)
		}
	})
	return cfs, cg
}

func join(t *testing.T, cfs cgroup.FS, cg string, pid int) {
	t.Helper()
	must(t, os.WriteFile(filepath.Join(cfs.Dir(cg), "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644))
}

// liveEngine is an engine on this host's /proc and cgroups, used for its
// readers and its real pidfd signaler; its loop is never run.
func liveEngine(t *testing.T, cfs cgroup.FS) *Engine {
	t.Helper()
	e, err := New(Config{Policy: policy.DefaultPreempt(), Proc: realProc(t), Cgroups: cfs, Targets: func() ([]Target, uint64) { return nil, 0 }})
	must(t, err)
	return e
}

// waitFor polls cond every 100 ms until it holds or a generous deadline
// passes (this machine is busy).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(2 * time.Minute); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("gave up waiting: %s", what)
		}
	}
}

// TestLiveForkStormFamily: a real parent forking 40 MiB children in a real
// memory cgroup beside a flat server. The choice is the parent and its
// children, one handle ends them all with one SIGKILL, and the server
// lives.
func TestLiveForkStormFamily(t *testing.T) {
	cfs, cg := liveCgroup(t)
	e := liveEngine(t, cfs)
	server := startHelper(t, "anon 16 jupyter-lab")
	join(t, cfs, cg, server.cmd.Process.Pid)
	server.grow(t)
	spawner := startHelper(t, "spawn 6 40 make")
	join(t, cfs, cg, spawner.cmd.Process.Pid)
	st := &targetState{t: Target{Ref: target.Ref{Cgroup: cg}}}
	t0 := time.Now()
	st.procs.add(t0, e.readProcs(cg, procfs.FieldStat|procfs.FieldStatus), time.Minute)
	must(t, func() error { _, err := io.WriteString(spawner.in, "go\n"); return err }())
	spawner.expect(t, "grown")
	var procs []procfs.Proc
	waitFor(t, "6 children of 40 MiB in the cgroup", func() bool {
		procs = e.procs(cg, &st.procs, time.Now())
		n := 0
		for _, p := range procs {
			if p.PPID == spawner.cmd.Process.Pid && p.RSSAnon >= 39<<20 {
				n++
			}
		}
		return n == 6
	})
	now := t0.Add(5 * time.Second)
	st.procs.add(now, procs, time.Minute)
	a := attribute(procs, &st.procs, now, 10*time.Second, 0, policy.DefaultKeep, true)
	if a.head == nil || a.head.PID != spawner.cmd.Process.Pid || !a.family || len(a.members) != 7 {
		t.Fatalf("culprit %+v (family %v, %d members), want the spawner %d and its 6 children", a.head, a.family, len(a.members), spawner.cmd.Process.Pid)
	}
	if a.init != server.cmd.Process.Pid {
		t.Errorf("init %d, want the server %d (the oldest process whose parent is outside)", a.init, server.cmd.Process.Pid)
	}
	if a.frees < 6*40<<20 {
		t.Errorf("frees %d MiB, want at least the children's 240", a.frees>>20)
	}
	h, err := e.open(cg, a.members)
	must(t, err)
	defer h.Close()
	must(t, h.Signal(unix.SIGKILL))
	// The children's parent is the spawner, which reaps nothing once
	// killed; they are reparented and reaped by the test process's
	// subreaper chain or init, and their pidfds poll readable on exit.
	waitFor(t, "every member to exit", h.Exited)
	for _, m := range a.members {
		if sameProcess(e.cfg.Proc, m) {
			t.Errorf("member %d still runs", m.PID)
		}
	}
	if !sameProcess(e.cfg.Proc, readAll(t, e.cfg.Proc, server.cmd.Process.Pid)[0]) {
		t.Error("the server was ended with the family")
	}
}

// TestLiveInnerPidNamespaceHog: unshare --pid --fork on this host makes
// the hog pid 1 of its own namespace (NSpid ends in 1); it is not the
// container's init, and it is the culprit.
func TestLiveInnerPidNamespaceHog(t *testing.T) {
	if out, err := exec.Command("unshare", "--pid", "--fork", "true").CombinedOutput(); err != nil {
		t.Skipf("unshare --pid --fork unavailable here: %v: %s", err, out)
	}
	cfs, cg := liveCgroup(t)
	e := liveEngine(t, cfs)
	server := startHelper(t, "anon 16 jupyter-lab")
	join(t, cfs, cg, server.cmd.Process.Pid)
	server.grow(t)
	st := &targetState{t: Target{Ref: target.Ref{Cgroup: cg}}}
	// The wrapper joins the cgroup before the hog grows: unshare forks the
	// hog at once, so it is moved too (cgroup v1 moves one pid at a time).
	hog := startHelper(t, "anon 64", "unshare", "--pid", "--fork")
	var hogPID int
	for _, pid := range descendants(t, hog.cmd.Process.Pid) {
		join(t, cfs, cg, pid)
		hogPID = pid
	}
	join(t, cfs, cg, hog.cmd.Process.Pid)
	t0 := time.Now()
	st.procs.add(t0, e.readProcs(cg, procfs.FieldStat|procfs.FieldStatus), time.Minute)
	hog.grow(t)
	now := t0.Add(3 * time.Second)
	procs := e.procs(cg, &st.procs, time.Now())
	st.procs.add(now, procs, time.Minute)
	i := slices.IndexFunc(procs, func(p procfs.Proc) bool { return p.PID == hogPID })
	if i < 0 || procs[i].NSPID != 1 {
		t.Fatalf("hog %d in %+v: want it in the cgroup with NSpid 1", hogPID, procs)
	}
	a := attribute(procs, &st.procs, now, 10*time.Second, 0, policy.DefaultKeep, true)
	if a.init != server.cmd.Process.Pid {
		t.Errorf("init %d, want the server %d, not the inner pid 1 (%d)", a.init, server.cmd.Process.Pid, hogPID)
	}
	if a.head == nil || a.head.PID != hogPID {
		t.Errorf("culprit %+v, want the hog %d", a.head, hogPID)
	}
}

// descendants lists the children of pid (one level), waiting for one.
func descendants(t *testing.T, pid int) []int {
	t.Helper()
	var out []int
	waitFor(t, fmt.Sprintf("a child of %d", pid), func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if err != nil {
			return false
		}
		out = nil
		for _, f := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(f)
			out = append(out, n)
		}
		return len(out) > 0
	})
	return out
}

// BenchmarkProcSnapshot is what the per-process history costs: every
// process of this host read (stat and status) and added to a history, as
// the engine does for each target's processes on every full sample (2 s,
// 1 s below releaseAvailable). Reported per process.
func BenchmarkProcSnapshot(b *testing.B) {
	pfs, err := procfs.NewFS("/proc")
	if err != nil {
		b.Fatal(err)
	}
	var pids []int
	ents, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	ph := &procHist{}
	t0 := time.Now()
	b.ResetTimer()
	for i := range b.N {
		procs := make([]procfs.Proc, 0, len(pids))
		for _, pid := range pids {
			if p, err := pfs.Read(pid, procfs.FieldStat|procfs.FieldStatus); err == nil {
				procs = append(procs, p)
			}
		}
		ph.add(t0.Add(time.Duration(i)*2*time.Second), procs, 8*time.Second)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pids)), "ns/process")
	b.ReportMetric(float64(len(pids)), "processes")
}
