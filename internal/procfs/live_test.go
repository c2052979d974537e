package procfs

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// liveFS returns the machine's /proc, skipping where there is none.
func liveFS(t *testing.T) FS {
	t.Helper()
	fsys, err := NewFS("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skipf("/proc is not a proc filesystem: %v", err)
	}
	return fsys
}

func TestLiveScanFindsSelf(t *testing.T) {
	fsys := liveFS(t)
	procs, err := fsys.Scan(context.Background(), FieldAll)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(procs); i++ {
		if procs[i-1].PID >= procs[i].PID {
			t.Fatalf("not sorted at %d: %d then %d", i, procs[i-1].PID, procs[i].PID)
		}
	}
	self := find(procs, os.Getpid())
	if self == nil {
		t.Fatalf("own pid %d not among %d processes", os.Getpid(), len(procs))
	}
	exe, _ := os.Executable()
	wantComm := filepath.Base(exe)
	if len(wantComm) > 15 {
		wantComm = wantComm[:15] // TASK_COMM_LEN - 1
	}
	if self.PPID != os.Getppid() || self.Comm != wantComm || self.UID != os.Getuid() || self.State == 0 {
		t.Errorf("self: got ppid %d comm %q uid %d state %q; want ppid %d comm %q uid %d",
			self.PPID, self.Comm, self.UID, self.State, os.Getppid(), wantComm, os.Getuid())
	}
	if self.Threads < 2 || self.RSSAnon == 0 || self.PgTables == 0 || self.Kernel {
		t.Errorf("self: implausible %+v", *self)
	}
	if len(self.Cmdline) == 0 || self.Cmdline[0] != os.Args[0] {
		t.Errorf("self: cmdline %q, want first %q", self.Cmdline, os.Args[0])
	}
	if self.Cgroup == "" && self.CgroupV1Memory == "" {
		t.Errorf("self: no cgroup")
	}
	// oom_score is 0 only at adj -1000 or when the node has no memory.
	if self.OOMScore <= 0 && self.OOMScoreAdj > -1000 {
		t.Errorf("self: oom_score %d at adj %d", self.OOMScore, self.OOMScoreAdj)
	}
	if kt := find(procs, 2); kt != nil && (!kt.Kernel || kt.Comm != "kthreadd") {
		t.Errorf("pid 2: got %+v, want kernel thread kthreadd", *kt)
	}
	for _, p := range procs {
		if p.Kernel && p.RSS() != 0 {
			t.Errorf("kernel thread %d (%s) has RSS %d", p.PID, p.Comm, p.RSS())
		}
	}
}

// TestLiveReadChild follows a child through its life: running, zombie
// (still listed, no memory), reaped (gone).
func TestLiveReadChild(t *testing.T) {
	fsys := liveFS(t)
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	pid := cmd.Process.Pid
	defer cmd.Process.Kill()

	// exec(2) closes the close-on-exec pipe that Start waits on before the
	// new image has set up its arguments: poll until cmdline shows them.
	var p Proc
	var err error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if p, err = fsys.Read(pid, FieldAll); err != nil || len(p.Cmdline) > 0 {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if p.PPID != os.Getpid() || p.Comm != "sleep" || strings.Join(p.Cmdline, " ") != "sleep 60" || p.Threads != 1 {
		t.Errorf("child: got %+v", p)
	}

	// Raising is always allowed and lowering back down to the inherited
	// minimum too; going below it needs CAP_SYS_RESOURCE, which a
	// container's root may lack.
	if os.Geteuid() == 0 {
		for _, adj := range []int{500, 100, 1000, 0} {
			if err := fsys.WriteOOMScoreAdj(pid, adj); err != nil {
				t.Fatal(err)
			}
		}
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Not reaped yet: wait for the zombie without calling wait(2).
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		p, err = fsys.Read(pid, FieldAll)
		if err != nil || p.State == 'Z' {
			break
		}
	}
	if err != nil || p.State != 'Z' || p.RSS() != 0 || p.Cmdline != nil {
		t.Errorf("zombie: got %+v, %v", p, err)
	}
	procs, err := fsys.Scan(context.Background(), FieldAll)
	if err != nil {
		t.Fatal(err)
	}
	if z := find(procs, pid); z == nil || z.State != 'Z' {
		t.Errorf("zombie not listed by Scan: %+v", z)
	}

	_ = cmd.Wait()
	if _, err := fsys.Read(pid, FieldStat); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("reaped: got %v, want fs.ErrNotExist", err)
	}
	if err := fsys.WriteOOMScoreAdj(pid, 1); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("write to reaped: got %v, want fs.ErrNotExist", err)
	}
}

func TestLiveMeminfo(t *testing.T) {
	m, err := liveFS(t).Meminfo()
	if err != nil {
		t.Fatal(err)
	}
	if m.MemTotal == 0 || m.MemAvailable > m.MemTotal || m.MemFree > m.MemTotal || m.SwapFree > m.SwapTotal {
		t.Errorf("implausible %+v", m)
	}
}

func find(procs []Proc, pid int) *Proc {
	for i := range procs {
		if procs[i].PID == pid {
			return &procs[i]
		}
	}
	return nil
}
