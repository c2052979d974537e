package agent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"podwarden/internal/cgroup"
	"podwarden/internal/policy"
	"podwarden/internal/procfs"
)

// liveHost is a container-like cgroup on this machine's real cgroup tree
// (the v1 memory hierarchy here; v2 runs in the qemu guest, see
// internal/vmtest), under a test-unique prefix so nothing else on the host
// can match the selector.
type liveHost struct {
	t        *testing.T
	cg       cgroup.FS
	proc     procfs.FS
	prefix   string // cgroup path of the test's subtree
	selector string
}

func newLiveHost(t *testing.T) *liveHost {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("live cgroup test needs root")
	}
	cfs, err := cgroup.NewFS("/sys/fs/cgroup")
	if err != nil {
		t.Skipf("no cgroup tree at /sys/fs/cgroup: %v", err)
	}
	pfs, err := procfs.NewFS("/proc")
	if err != nil {
		t.Fatal(err)
	}
	h := &liveHost{t: t, cg: cfs, proc: pfs, prefix: fmt.Sprintf("/podwarden-agent-test-%d", os.Getpid())}
	h.selector = h.prefix + "/kubepods/pod*/*"
	t.Cleanup(h.cleanup)
	return h
}

func (h *liveHost) mkdir(cg string) {
	h.t.Helper()
	if err := os.MkdirAll(h.cg.Dir(cg), 0o755); err != nil {
		h.t.Fatal(err)
	}
}

// start runs sleep in cg and returns its pid. The process joins the cgroup
// from a shell before exec, the way runc's init does.
func (h *liveHost) start(cg string) int {
	h.t.Helper()
	return h.startNamed(cg, "sleep").Process.Pid
}

// startNamed runs sleep under another name (its comm) in cg ("" for the
// test's own cgroup) and returns it once it has exec'd there.
func (h *liveHost) startNamed(cg, name string) *exec.Cmd {
	h.t.Helper()
	bin, err := exec.LookPath("sleep")
	if err != nil {
		h.t.Fatal(err)
	}
	if name != "sleep" {
		link := filepath.Join(h.t.TempDir(), name)
		if err := os.Symlink(bin, link); err != nil {
			h.t.Fatal(err)
		}
		bin = link
	}
	script := "exec " + bin + " 300"
	if cg != "" {
		script = "echo $$ > " + filepath.Join(h.cg.Dir(cg), "cgroup.procs") + " && " + script
	}
	cmd := exec.Command("sh", "-c", script)
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid := cmd.Process.Pid
	// Wait until the process is in the cgroup and has exec'd.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		p, err := h.proc.Read(pid, procfs.FieldStat|procfs.FieldCgroup)
		if err == nil && p.Comm == name && (cg == "" || p.CgroupV1Memory == cg || p.Cgroup == cg) {
			return cmd
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("pid %d never ran as %s in cgroup %q", pid, name, cg)
	return nil
}

func (h *liveHost) adj(pid int) int {
	h.t.Helper()
	p, err := h.proc.Read(pid, procfs.FieldOOMScoreAdj)
	if err != nil {
		h.t.Fatal(err)
	}
	return p.OOMScoreAdj
}

func (h *liveHost) cleanup() {
	// Remove leaf-first; processes are killed by earlier cleanups (t.Cleanup
	// runs last-registered first, and start registers after newLiveHost).
	var dirs []string
	_ = filepath.Walk(h.cg.Dir(h.prefix), func(path string, info os.FileInfo, err error) error {
		if err == nil && info.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		for try := 0; try < 50; try++ {
			if err := os.Remove(dirs[i]); err == nil || os.IsNotExist(err) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (h *liveHost) agent(dryRun bool) *Agent {
	h.t.Helper()
	pol := policy.Default()
	pol.CgroupSelector = h.selector
	pol.Protected = nil // never touch this host's daemons from a test
	a, err := New(Config{Policy: pol, Proc: h.proc, Cgroups: h.cg, DryRun: dryRun, FastInterval: 100 * time.Millisecond})
	if err != nil {
		h.t.Fatal(err)
	}
	return a
}

func TestLiveReconcileRaisesAdj(t *testing.T) {
	h := newLiveHost(t)
	container := h.prefix + "/kubepods/pod11111111-2222-3333-4444-555555555555/" + strings.Repeat("ab", 32)
	other := h.prefix + "/other"
	h.mkdir(container)
	h.mkdir(other)
	in1, in2 := h.start(container), h.start(container)
	out := h.start(other)

	if _, err := h.agent(true).Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h.adj(in1) != 0 {
		t.Fatalf("dry run changed pid %d's adj to %d", in1, h.adj(in1))
	}
	a := h.agent(false)
	changes, err := a.Reconcile(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if c.Err != nil {
			t.Errorf("change %+v: %v", c, c.Err)
		}
	}
	for pid, want := range map[int]int{in1: 900, in2: 900, out: 0} {
		if got := h.adj(pid); got != want {
			t.Errorf("pid %d adj = %d, want %d", pid, got, want)
		}
	}
	if got := a.Targets(); len(got) != 1 || got[0].Cgroup != container {
		t.Fatalf("targets = %+v", got)
	}
	// Idempotent: a second pass changes nothing.
	if again, _ := a.Reconcile(context.Background()); len(again) != 0 {
		t.Fatalf("second pass changed %+v", again)
	}
}

// TestLiveRunProtectsNewContainers runs the event-driven loop on the real
// cgroup tree: containers and processes created after the agent started are
// raised without waiting for a periodic pass (the full pass is an hour
// away).
func TestLiveRunProtectsNewContainers(t *testing.T) {
	h := newLiveHost(t)
	h.mkdir(h.prefix + "/kubepods")
	pol := policy.Default()
	pol.CgroupSelector = h.selector
	pol.Protected = nil
	pol.Interval = time.Hour
	a, err := New(Config{Policy: pol, Proc: h.proc, Cgroups: h.cg, FastInterval: MaxFastInterval})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	// The loop opens its event sources before its first pass.
	waitFor(t, 60*time.Second, "agent ready", a.Ready)

	for i := range 5 {
		container := fmt.Sprintf("%s/kubepods/pod%08d-2222-3333-4444-555555555555/%064d", h.prefix, i, i)
		start := time.Now()
		h.mkdir(container)
		pid := h.start(container)
		for h.adj(pid) != 900 {
			if time.Since(start) > 30*time.Second {
				t.Fatalf("container %d: pid %d still at adj %d after %v", i, pid, h.adj(pid), time.Since(start))
			}
			time.Sleep(time.Millisecond)
		}
		t.Logf("container %d: protected %v after mkdir", i, time.Since(start))
	}
}

// TestLiveCgroupStormIsCoalesced: a pod that makes cgroups in a loop (it
// may, with writable cgroups) costs the agent neither a goroutine nor a
// whole-target pass per mkdir. Before, every mkdir in a target started a
// recheck goroutine and a pass (163 goroutines, 34% of a core at 120
// mkdir/s).
func TestLiveCgroupStormIsCoalesced(t *testing.T) {
	h := newLiveHost(t)
	container := h.prefix + "/kubepods/pod11111111-2222-3333-4444-555555555555/" + strings.Repeat("cd", 32)
	h.mkdir(container)
	a := h.agent(false)
	h.run(a)
	base := runtime.NumGoroutine()
	passes := func() uint64 {
		var m dto.Metric
		if err := a.m.Reconcile.WithLabelValues("recheck").(prometheus.Histogram).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetHistogram().GetSampleCount()
	}
	before := passes()
	peak := base
	start := time.Now()
	const n = 300
	for i := range n {
		h.mkdir(fmt.Sprintf("%s/storm%d", container, i))
		peak = max(peak, runtime.NumGoroutine())
	}
	elapsed := time.Since(start)
	// The last recheck of the storm comes a second after its last mkdir.
	time.Sleep(1500 * time.Millisecond)
	got := passes() - before
	// One pass per 100 ms at most while the storm lasts, plus the three
	// rechecks after it.
	limit := uint64(elapsed/minProtectGap) + uint64(len(recheckAfter)) + 2
	t.Logf("%d mkdirs in %v: %d whole-target passes (limit %d), goroutines %d -> peak %d", n, elapsed, got, limit, base, peak)
	if got > limit {
		t.Errorf("%d whole-target passes for %d mkdirs in %v, want at most %d", got, n, elapsed, limit)
	}
	if peak > base+10 {
		t.Errorf("goroutines rose from %d to %d during the storm", base, peak)
	}
}
