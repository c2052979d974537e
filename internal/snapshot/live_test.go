package snapshot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"podwarden/internal/cgroup"
	"podwarden/internal/oom"
	"podwarden/internal/procfs"
)

// TestLiveOOMScoreMatchesKernel checks the badness model against the real
// kernel: for every process on this machine, the oom_score the model
// predicts from /proc/PID/status and oom_score_adj must equal what the
// kernel prints in /proc/PID/oom_score, within 1 (kernels >= 5.9).
//
// Memory moves between reading status and oom_score, so a process is
// re-read once when the first comparison misses; one that misses twice is a
// real disagreement.
func TestLiveOOMScoreMatchesKernel(t *testing.T) {
	if _, err := os.Stat("/proc/self/oom_score"); err != nil {
		t.Skip("no /proc/self/oom_score on this machine")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: other users' /proc/PID/status memory lines are readable, but not every process's")
	}
	pfs, err := procfs.NewFS("/proc")
	if err != nil {
		t.Fatal(err)
	}
	// Processes whose score is not the idle 666: memory held at a raised
	// adj, so both terms of the formula are exercised. (Lowering adj needs
	// CAP_SYS_RESOURCE, which root in this sandbox lacks.)
	hogs := map[int]int{}
	for _, h := range []struct{ mib, adj int }{{384, 500}, {768, 100}, {256, 0}} {
		pid := startHog(t, h.mib)
		if err := pfs.WriteOOMScoreAdj(pid, h.adj); err != nil {
			t.Fatal(err)
		}
		hogs[pid] = h.adj
	}
	fields := procfs.FieldStat | procfs.FieldStatus | procfs.FieldOOMScore | procfs.FieldOOMScoreAdj
	snap, err := Take(context.Background(), pfs, nil, fields)
	if err != nil {
		t.Fatal(err)
	}
	total := snap.TotalPages()
	checked, transient := 0, 0
	for _, p := range snap.Procs {
		if p.State == 'Z' || p.State == 'X' {
			continue // no mm: the kernel reports 0 and so do we, but RSS is unknowable
		}
		got := oom.Score(Task(p), total)
		if _, ok := hogs[p.PID]; ok {
			if p.OOMScore == 666 || p.RSS() < 200<<20 {
				t.Errorf("hog pid %d: oom_score %d, rss %d: the hog did not take its memory", p.PID, p.OOMScore, p.RSS())
			}
			delete(hogs, p.PID)
		}
		if abs(got-p.OOMScore) <= 1 {
			checked++
			continue
		}
		q, err := pfs.Read(p.PID, fields|procfs.FieldCgroup)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got = oom.Score(Task(Process{Proc: q}), total)
		if q.OOMScore == 0 && q.OOMScoreAdj != -1000 {
			// The kernel prints 0 for a task it cannot pick right now:
			// one exiting (its mm already gone) or a vfork child before
			// its exec. Short-lived processes of a busy machine are
			// caught there; /proc shows neither state.
			transient++
			continue
		}
		if abs(got-q.OOMScore) > 1 {
			t.Errorf("pid %d (%s): model says oom_score %d, kernel says %d (rss %d, swap %d, pgtables %d, adj %d, totalpages %d)",
				q.PID, q.Comm, got, q.OOMScore, q.RSS(), q.Swap, q.PgTables, q.OOMScoreAdj, total)
		}
		checked++
	}
	if len(hogs) > 0 {
		t.Errorf("hogs %v missing from the snapshot", hogs)
	}
	if checked < 10 {
		t.Fatalf("only %d processes checked", checked)
	}
	t.Logf("%d processes: predicted oom_score within 1 of the kernel's (%d exiting or in vfork, skipped)", checked, transient)
}

// startHog starts a process that touches mib MiB and sleeps, and returns
// its pid once the memory is resident.
func startHog(t *testing.T, mib int) int {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is needed for the memory hogs (make deps installs it)")
	}
	// The hog lives until its stdin closes (the test ends or dies), not
	// for a fixed time: on a busy machine starting the others can take
	// minutes.
	cmd := exec.Command(py, "-c", fmt.Sprintf("import sys\nx = b'\\x01' * (%d << 20)\nsys.stdout.write('ready\\n'); sys.stdout.flush()\nsys.stdin.read()", mib))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("hog of %d MiB did not start: %q, %v", mib, line, err)
	}
	return cmd.Process.Pid
}

// exiting reports whether pid has exited or is exiting, after a moment for
// its exit to finish.
func exiting(pfs procfs.FS, pid int) bool {
	for range 50 {
		q, err := pfs.Read(pid, procfs.FieldStat)
		if err != nil || q.State == 'Z' || q.State == 'X' {
			return true
		}
		time.Sleep(2 * time.Millisecond)
	}
	return false
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// TestLiveCgroupsFromTree checks that cgroups taken from the tree's
// cgroup.procs files agree with /proc/PID/cgroup for every process.
func TestLiveCgroupsFromTree(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	pfs, err := procfs.NewFS("/proc")
	if err != nil {
		t.Fatal(err)
	}
	cfs, err := cgroup.NewFS("/sys/fs/cgroup")
	if err != nil {
		t.Skipf("no cgroup tree: %v", err)
	}
	if m, err := cfs.PidCgroups(context.Background()); err != nil || len(m) == 0 {
		t.Fatal("the live tree listed no processes")
	}
	snap, err := Take(context.Background(), pfs, &cfs, procfs.FieldCgroup)
	if err != nil {
		t.Fatal(err)
	}
	// On a busy machine processes are moved between cgroups and pids are
	// reused between the tree walk and the re-read: a disagreement counts
	// only if the tree, read again, still disagrees with /proc.
	checked, moved := 0, 0
	for _, p := range snap.Procs {
		q, err := pfs.Read(p.PID, procfs.FieldCgroup)
		if err != nil {
			continue // exited
		}
		want := memCgroup(q, &cfs)
		if p.MemCgroup != want {
			if pids, err := cfs.Procs(want, false); err == nil && slices.Contains(pids, p.PID) {
				moved++
				continue
			}
			// An exiting task is moved to the root cgroup (cgroup v1's
			// cgroup_exit) before it becomes a zombie: its /proc reads "/"
			// and no cgroup.procs lists it. The fork loops of a busy host
			// make many such short-lived processes.
			if exiting(pfs, p.PID) {
				moved++
				continue
			}
			t.Errorf("pid %d (%s): cgroup from the tree %q, from /proc %q", p.PID, p.Comm, p.MemCgroup, want)
		}
		checked++
	}
	if checked < 10 {
		t.Fatalf("only %d processes checked", checked)
	}
	t.Logf("%d processes agree; %d moved, were replaced or exited while the test ran", checked, moved)
}
