package preempt

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"podwarden/internal/cgroup"
	"podwarden/internal/kubeevent"
	"podwarden/internal/policy"
	"podwarden/internal/procfs"
	"podwarden/internal/syncbuf"
	"podwarden/internal/target"
)

// fixture is a node made of files, as earlyoom's tests mock /proc: a proc
// root (meminfo, pressure/memory, one directory per process) and a cgroup
// v2 root (one directory per container with memory.current, .max, .stat,
// .pressure and cgroup.procs). The clock is the test's; the pids are not
// real processes, so signals go to a recording fake (the real pidfd path is
// tested on child processes in signal_test.go).
type fixture struct {
	t        *testing.T
	proc, cg string
	now      time.Time
	sig      *fakeSignaler
	// targets are the agent's targets, as tests change them; published
	// is the snapshot handed to the engine, gen its generation (snapshot).
	targets   []Target
	published []Target
	gen       uint64
	pol       policy.Preempt
	e         *Engine
	rep       *fakeReporter
	logs      *syncbuf.Buffer
	// node memory in MiB and PSI totals in microseconds
	totalMiB, availMiB uint64
	some               uint64
	psi                bool
	cgPSI              map[string]uint64
	// ppid and shmem (MiB) of fixture processes; a pid not in ppid has
	// its parent outside the container.
	ppid  map[int]int
	shmem map[int]uint64
	// cgShmem is each container's shmem in MiB, part of its file MiB.
	cgShmem map[string]uint64
	// comm and state of fixture processes, for stat (state 'S' unless set).
	comm  map[int]string
	state map[int]byte
	// dying pids are not reaped when they die: they stay in /proc in
	// do_exit (PF_EXITING, their memory gone), as a victim does on a
	// starved node until its pidfd polls readable.
	dying map[int]bool
}

const mib = 1 << 20

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{
		t: t, proc: filepath.Join(dir, "proc"), cg: filepath.Join(dir, "cgroup"),
		now: time.Unix(1_000_000, 0), sig: &fakeSignaler{exitOn: map[int][]string{}},
		pol: policy.DefaultPreempt(), rep: &fakeReporter{}, logs: &syncbuf.Buffer{},
		totalMiB: 1000, availMiB: 600, psi: true, cgPSI: map[string]uint64{}, ppid: map[int]int{}, shmem: map[int]uint64{}, cgShmem: map[string]uint64{},
		comm: map[int]string{}, state: map[int]byte{}, dying: map[int]bool{},
	}
	// A process sent SIGSTOP is stopped, as its stat then says.
	f.sig.onSignal = func(pid int, sig string) {
		if sig == "SIGSTOP" && f.comm[pid] != "" {
			f.state[pid] = 'T'
			f.writeStat(pid)
		}
	}
	f.pol.Enabled = true
	f.pol.Keep = policy.DefaultKeep
	for _, d := range []string{f.proc + "/pressure", f.cg} {
		must(t, os.MkdirAll(d, 0o755))
	}
	f.write(f.cg+"/cgroup.controllers", "memory\n")
	f.writeNode()
	return f
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) write(p, data string) {
	f.t.Helper()
	must(f.t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(f.t, os.WriteFile(p, []byte(data), 0o644))
}

func (f *fixture) writeNode() {
	f.write(f.proc+"/meminfo", fmt.Sprintf("MemTotal: %d kB\nMemFree: %d kB\nMemAvailable: %d kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n",
		f.totalMiB*1024, f.availMiB*512, f.availMiB*1024))
	p := f.proc + "/pressure/memory"
	if !f.psi {
		os.Remove(p)
		return
	}
	f.write(p, fmt.Sprintf("some avg10=0.00 avg60=0.00 avg300=0.00 total=%d\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=%d\n", f.some, f.some/2))
}

// engine builds the engine over the fixture on first use.
func (f *fixture) engine() *Engine {
	if f.e != nil {
		return f.e
	}
	pfs, err := procfs.NewFS(f.proc)
	must(f.t, err)
	cfs, err := cgroup.NewFS(f.cg)
	must(f.t, err)
	e, err := New(Config{
		Policy: f.pol, Proc: pfs, Cgroups: cfs, Reporter: f.rep, Signaler: f.sig,
		Targets: f.snapshot,
		Now:     func() time.Time { return f.now },
		Log:     slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	must(f.t, err)
	e.cgTriggers = false // fixture files are not PSI files
	f.e = e
	return e
}

// snapshot publishes f.targets as the agent does: a new generation when
// they changed since the last snapshot, else the same snapshot again.
func (f *fixture) snapshot() ([]Target, uint64) {
	if f.gen == 0 || !reflect.DeepEqual(f.targets, f.published) {
		f.published, f.gen = slices.Clone(f.targets), f.gen+1
	}
	return f.published, f.gen
}

// container adds a target container with a limit (0: max) and usage,
// of which fileMiB is page cache.
func (f *fixture) container(pod, name string, limitMiB, usageMiB, fileMiB uint64) string {
	cg := "/kubepods/pod" + pod + "/" + name
	f.targets = append(f.targets, Target{Ref: target.Ref{Cgroup: cg, PodUID: pod, Namespace: "ns", PodName: pod,
		Container: name}, Preempt: policy.PreemptDecision{Mode: policy.PreemptOn, Keep: f.pol.Keep}})
	if _, err := os.Stat(f.cg + cg + "/cgroup.procs"); err != nil {
		f.write(f.cg+cg+"/cgroup.procs", "")
	}
	f.usage(cg, limitMiB, usageMiB, fileMiB)
	return cg
}

func (f *fixture) usage(cg string, limitMiB, usageMiB, fileMiB uint64) {
	d := f.cg + cg
	f.write(d+"/memory.current", fmt.Sprint(usageMiB*mib))
	limit := "max"
	if limitMiB > 0 {
		limit = fmt.Sprint(limitMiB * mib)
	}
	f.write(d+"/memory.max", limit+"\n")
	// shmem is part of file (as the kernel counts it) and never inactive
	// cache: reclaim cannot drop it.
	sh := min(f.cgShmem[cg], fileMiB)
	f.write(d+"/memory.stat", fmt.Sprintf("anon %d\nfile %d\nshmem %d\nactive_file 0\ninactive_file %d\n", (usageMiB-fileMiB)*mib, fileMiB*mib, sh*mib, (fileMiB-sh)*mib))
	f.write(d+"/memory.pressure", fmt.Sprintf("some avg10=0.00 avg60=0.00 avg300=0.00 total=%d\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", f.cgPSI[cg]))
}

// process adds a process to cg.
func (f *fixture) process(cg string, pid, nspid int, comm string, rssMiB uint64, cmdline ...string) {
	d := fmt.Sprintf("%s/%d", f.proc, pid)
	f.comm[pid] = comm
	f.writeStat(pid)
	f.write(d+"/status", fmt.Sprintf("Name:\t%s\nUid:\t1000\t1000\t1000\t1000\nNSpid:\t%d\t%d\nRssAnon:\t%d kB\nRssFile:\t0 kB\nRssShmem:\t%d kB\nVmSwap:\t0 kB\nVmPTE:\t40 kB\n",
		comm, pid, nspid, rssMiB*1024, f.shmem[pid]*1024))
	f.write(d+"/cmdline", strings.Join(cmdline, "\x00")+"\x00")
	f.write(d+"/oom_score_adj", "900\n")
	f.write(d+"/cgroup", "0::"+cg+"\n")
	procs := f.cg + cg + "/cgroup.procs"
	b, _ := os.ReadFile(procs)
	if !slices.Contains(strings.Fields(string(b)), fmt.Sprint(pid)) {
		f.write(procs, string(b)+fmt.Sprintf("%d\n", pid))
	}
}

// writeStat writes pid's stat from its comm, parent and state.
func (f *fixture) writeStat(pid int) {
	ppid := f.ppid[pid]
	if ppid == 0 {
		ppid = 1 // outside the container: the runtime's shim
	}
	state := f.state[pid]
	if state == 0 {
		state = 'S'
	}
	flags := 0x400000 // PF_RANDOMIZE, as most processes have
	if f.state[pid] == 'R' && f.dying[pid] {
		flags |= 0x4 // PF_EXITING
	}
	f.write(fmt.Sprintf("%s/%d/stat", f.proc, pid), fmt.Sprintf("%d (%s) %c %d %d %d 0 -1 %d 0 0 0 0 0 0 0 0 20 0 1 0 %d 0 0\n", pid, f.comm[pid], state, ppid, pid, pid, flags, 5000+pid))
}

// exit removes a process, as when it has died and been reaped.
func (f *fixture) exit(pid int) {
	must(f.t, os.RemoveAll(fmt.Sprintf("%s/%d", f.proc, pid)))
	filepath.WalkDir(f.cg, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "cgroup.procs" {
			b, _ := os.ReadFile(p)
			var keep []string
			for _, l := range strings.Fields(string(b)) {
				if l != fmt.Sprint(pid) {
					keep = append(keep, l+"\n")
				}
			}
			os.WriteFile(p, []byte(strings.Join(keep, "")), 0o644)
		}
		return nil
	})
}

// tick advances the clock by d and runs one engine step; the node's PSI
// total grows by stall*d (stall in 0..1).
func (f *fixture) tick(d time.Duration, stall float64) {
	f.t.Helper()
	f.now = f.now.Add(d)
	f.some += uint64(stall * float64(d.Microseconds()))
	f.writeNode()
	e := f.engine()
	e.step(nil)
	// A victim the fake let exit is reaped, as the kernel would; a dying
	// one stays in do_exit, its memory gone.
	for _, pid := range f.sig.drainExited() {
		if !f.dying[pid] {
			f.exit(pid)
			continue
		}
		f.state[pid] = 'R'
		f.writeStat(pid)
		f.write(fmt.Sprintf("%s/%d/status", f.proc, pid), fmt.Sprintf("Name:\t%s\nUid:\t1000\t1000\t1000\t1000\n", f.comm[pid]))
	}
}

// pressAtLimit holds container cg (limit 256 MiB) at usageMiB, fileMiB of
// it page cache, with its own pressure stalling 30% of each of n seconds.
func (f *fixture) pressAtLimit(cg string, n int, usageMiB, fileMiB uint64) {
	f.t.Helper()
	for range n {
		f.cgPSI[cg] += 300_000
		f.usage(cg, 256, usageMiB, fileMiB)
		f.tick(time.Second, 0)
	}
}

// run ticks every 100 ms for d.
func (f *fixture) run(d time.Duration, stall float64) {
	for end := f.now.Add(d); f.now.Before(end); {
		f.tick(100*time.Millisecond, stall)
	}
}

// reports are the Events the engine queued.
func (f *fixture) reports() []kubeevent.PressureKill {
	var out []kubeevent.PressureKill
	for {
		select {
		case r := <-f.engine().reports:
			out = append(out, r.k)
		default:
			return out
		}
	}
}

type fakeSignaler struct {
	mu sync.Mutex
	// exitOn: the signals a pid dies of (the others it ignores).
	exitOn map[int][]string
	sent   []string // "pid SIGNAL"
	exited []int    // died, not reaped yet
	dead   map[int]bool
	mrel   []int
	// vanish: pids whose Open fails as if they had exited; gone is
	// called for them, so the fixture drops them as the kernel would.
	vanish map[int]bool
	gone   func(pid int)
	// lag: how many more times Exited says no after a pid died (the
	// kernel frees memory before the pidfd polls readable).
	lag map[int]int
	// onSignal, when set, is told of every signal delivered (the lock is
	// not held): the fixture marks a stopped process, or forks a child
	// in the middle of the stop.
	onSignal func(pid int, sig string)
}

func (s *fakeSignaler) Open(p procfs.Proc) (Handle, error) {
	if s.vanish[p.PID] {
		if s.gone != nil {
			s.gone(p.PID)
		}
		return nil, fmt.Errorf("process %d: %w", p.PID, fs.ErrNotExist)
	}
	return &fakeHandle{s: s, pid: p.PID}, nil
}

func (s *fakeSignaler) drainExited() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.exited
	s.exited = nil
	return out
}

func (s *fakeSignaler) signals() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sent)
}

type fakeHandle struct {
	s   *fakeSignaler
	pid int
}

func (h *fakeHandle) Signal(sig unix.Signal) error {
	err := h.signal(sig)
	if err == nil && h.s.onSignal != nil {
		h.s.onSignal(h.pid, unix.SignalName(sig))
	}
	return err
}

func (h *fakeHandle) signal(sig unix.Signal) error {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	if h.s.dead[h.pid] {
		return errExited
	}
	name := unix.SignalName(sig)
	h.s.sent = append(h.s.sent, fmt.Sprintf("%d %s", h.pid, name))
	if name == "SIGKILL" || slices.Contains(h.s.exitOn[h.pid], name) {
		if h.s.dead == nil {
			h.s.dead = map[int]bool{}
		}
		h.s.dead[h.pid] = true
		h.s.exited = append(h.s.exited, h.pid)
	}
	return nil
}

func (h *fakeHandle) Exited() bool {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	if h.s.dead[h.pid] && h.s.lag[h.pid] > 0 {
		h.s.lag[h.pid]--
		return false
	}
	return h.s.dead[h.pid]
}

func (h *fakeHandle) Fd() int { return -1 }

func (h *fakeHandle) Mrelease() error {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	h.s.mrel = append(h.s.mrel, h.pid)
	return nil
}

func (h *fakeHandle) Close() error { return nil }

type fakeReporter struct {
	mu sync.Mutex
	ks []kubeevent.PressureKill
}

func (r *fakeReporter) PodPressureKill(_ context.Context, k kubeevent.PressureKill) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ks = append(r.ks, k)
	return nil
}

func removeAll(p string) error { return os.RemoveAll(p) }

func defaultEnabled() policy.Preempt {
	p := policy.DefaultPreempt()
	p.Enabled = true
	return p
}
