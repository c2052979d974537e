package agent

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"podwarden/internal/kmsg"
	"podwarden/internal/kubeevent"
	"podwarden/internal/oomreport"
	"podwarden/internal/policy"
)

// oomIn makes a real cgroup OOM kill in target cgroup cg (cgroup v1 here):
// a 20 MiB limit and a process that wants 100 MiB.
func (h *liveHost) oomIn(cg string) {
	h.t.Helper()
	if err := os.WriteFile(filepath.Join(h.cg.Dir(cg), "memory.limit_in_bytes"), []byte("20M"), 0); err != nil {
		h.t.Skipf("cannot set a memory limit here: %v", err)
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		h.t.Skip("python3 not installed")
	}
	cmd := exec.Command("sh", "-c", "echo $$ > "+filepath.Join(h.cg.Dir(cg), "cgroup.procs")+" && exec "+py+" -c 'x = bytearray(100 << 20)'")
	if err := cmd.Run(); err == nil {
		h.t.Fatal("the hog was not OOM-killed")
	}
}

// podEvents waits for the reporter to have n pod Events.
func (f *fakeReporter) waitPods(t *testing.T, n int) []kubeevent.OOM {
	t.Helper()
	waitFor(t, 60*time.Second, "pod Event", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.pods) >= n
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]kubeevent.OOM(nil), f.pods...)
}

// Where the kernel log cannot be read, a real OOM kill in a target still
// becomes an Event on its pod, from the oom_kill counter: it says a process
// was killed and that it cannot name it.
func TestLiveOOMEventFromMemoryEvents(t *testing.T) {
	h := newCRIHost(t)
	h.mkdir(h.prefix + "/kubepods")
	target := h.pod("notebook-0", "users", "8c2d7e1a-3b4f-4a5e-8d6c-7f8091a2b3c4")
	rep := &fakeReporter{}
	pol := policy.Default()
	pol.Protected = nil
	a, err := New(Config{Policy: pol, Proc: h.proc, Cgroups: h.cg, Runtime: h.client, Reporter: rep,
		KernelLog: SourceMemoryEvents, FastInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h.run(a)
	waitFor(t, 30*time.Second, "target found", func() bool { return h.targetCount(a) == 1 })
	// Let a fast pass read the counter before the kill.
	time.Sleep(500 * time.Millisecond)
	h.oomIn(target)
	ev := rep.waitPods(t, 1)[0]
	if ev.PodName != "notebook-0" || ev.Namespace != "users" || ev.Kills != 1 || ev.Comm != "" {
		t.Fatalf("Event %+v, want one unnamed kill in users/notebook-0", ev)
	}
	t.Logf("Event message: %s", kubeevent.PodMessage(ev))
}

// With /dev/kmsg refused (here: a path that does not exist), the agent
// falls back to syslog(2) and names the process the kernel killed.
func TestLiveOOMEventFromSyslog(t *testing.T) {
	if _, err := kmsg.OpenSyslog(true); err != nil {
		t.Skipf("syslog(2) not readable here: %v", err)
	}
	h := newCRIHost(t)
	h.mkdir(h.prefix + "/kubepods")
	target := h.pod("notebook-1", "users", "7c2d7e1a-3b4f-4a5e-8d6c-7f8091a2b3c4")
	rep := &fakeReporter{}
	pol := policy.Default()
	pol.Protected = nil
	a, err := New(Config{Policy: pol, Proc: h.proc, Cgroups: h.cg, Runtime: h.client, Reporter: rep,
		KmsgPath: filepath.Join(t.TempDir(), "no-kmsg"), FastInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h.run(a)
	waitFor(t, 30*time.Second, "target found", func() bool { return h.targetCount(a) == 1 })
	if a.kernelLog != SourceSyslog {
		t.Fatalf("kernel log source %q, want syslog", a.kernelLog)
	}
	h.oomIn(target)
	ev := rep.waitPods(t, 1)[0]
	if ev.PodName != "notebook-1" || ev.Comm != "python3" || ev.PID == 0 || ev.Kind != oomreport.KindCgroup {
		t.Fatalf("Event %+v, want python3 killed in users/notebook-1 by its limit", ev)
	}
	t.Logf("Event message: %s", kubeevent.PodMessage(ev))
}
