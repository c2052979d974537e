package preempt

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"podwarden/internal/policy"
	"podwarden/internal/procfs"
)

func TestKeepRule(t *testing.T) {
	keep := policy.DefaultKeep
	for name, tc := range map[string]struct {
		p    procfs.Proc
		want string
	}{
		"pid 1 of a namespace":       {procfs.Proc{PID: 50, NSPID: 1, Comm: "python"}, ""},
		"jupyter-lab by comm":        {procfs.Proc{Comm: "jupyter-lab"}, "keep jupyter-lab"},
		"jupyter-lab by script":      {procfs.Proc{Comm: "python3.11", Cmdline: []string{"/opt/conda/bin/python3.11", "/opt/conda/bin/jupyter-lab", "--ip=0.0.0.0"}}, "keep jupyter-lab"},
		"singleuser, comm cut at 15": {procfs.Proc{Comm: "jupyterhub-sing"}, "keep jupyterhub-singleuser"},
		"rsession":                   {procfs.Proc{Comm: "rsession", Cmdline: []string{"/usr/lib/rstudio-server/bin/rsession", "-u", "ada"}}, "keep rsession"},
		"sshd session":               {procfs.Proc{Comm: "sshd", Cmdline: []string{"sshd: ada [priv]"}}, "keep sshd"},
		"systemd --user":             {procfs.Proc{Comm: "systemd", Cmdline: []string{"/lib/systemd/systemd", "--user"}}, "keep systemd"},
		"ipykernel dies":             {procfs.Proc{Comm: "python3", Cmdline: []string{"python3", "-m", "ipykernel_launcher", "-f", "k.json"}}, ""},
		"R kernel dies":              {procfs.Proc{Comm: "R", Cmdline: []string{"/usr/lib/R/bin/exec/R", "--no-echo"}}, ""},
		"flag is not a script":       {procfs.Proc{Comm: "python", Cmdline: []string{"python", "-c", "jupyter-lab"}}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			if got := keepRule(tc.p, keep); got != tc.want {
				t.Errorf("keepRule = %q, want %q", got, tc.want)
			}
		})
	}
	if got := keepRule(procfs.Proc{Comm: "code-server"}, []string{"code-*"}); got != "keep code-*" {
		t.Errorf("glob: %q", got)
	}
}

func TestJudge(t *testing.T) {
	th := policy.Thresholds{MinAvailable: 10, CriticalAvailable: 4, ReleaseAvailable: 20}
	t0 := time.Unix(0, 0)
	// judged replays samples as the engine takes them: judge runs on
	// each, and the last judgement is the answer (a fall is danger only
	// once a later sample shows it going on).
	judged := func(ss []sample) health {
		h := &history{}
		var hl health
		for _, s := range ss {
			h.add(s, time.Minute)
			hl = judge(h, th, time.Second, false, 0.1)
		}
		return hl
	}
	mk := func(avail uint64, stall float64, psi bool) []sample {
		var ss []sample
		for i := range 11 {
			ss = append(ss, sample{at: t0.Add(time.Duration(i) * 100 * time.Millisecond), total: 1000, avail: avail,
				some: uint64(float64(i) * 100_000 * stall), psi: psi})
		}
		return ss
	}
	for name, tc := range map[string]struct {
		ss   []sample
		want level
	}{
		"plenty, stalled":           {mk(400, 0.9, true), levelOK},
		"hysteresis band":           {mk(150, 0.9, true), levelLow},
		"low without pressure":      {mk(90, 0.05, true), levelLow},
		"low with pressure":         {mk(90, 0.1, true), levelDanger},
		"critical without pressure": {mk(30, 0, true), levelCritical},
		"no psi, steady":            {mk(90, 0, false), levelLow},
		"unlimited cgroup":          {[]sample{{at: t0, avail: 0, total: 0}}, levelOK},
	} {
		t.Run(name, func(t *testing.T) {
			if got := judged(tc.ss).level; got != tc.want {
				t.Errorf("level %v, want %v", got, tc.want)
			}
		})
	}
	// A fast hog outruns PSI: memory falling 2% of the total within the
	// window is pressure below minAvailable; 0.5% is not.
	falling := func(per100ms uint64) []sample {
		var ss []sample
		for i := range 11 {
			ss = append(ss, sample{at: t0.Add(time.Duration(i) * 100 * time.Millisecond), total: 10000,
				avail: 950 + per100ms*uint64(10-i), psi: true})
		}
		return ss
	}
	for per100ms, want := range map[uint64]level{20: levelDanger, 5: levelLow, 0: levelLow} {
		if got := judged(falling(per100ms)).level; got != want {
			t.Errorf("falling %.1f%% of the total per second without stall: %v, want %v", float64(per100ms)/10, got, want)
		}
	}
	// Below releaseAvailable (200 of 1000), a fall that reaches
	// criticalAvailable (40) within two windows is danger above
	// minAvailable (100); a slower one, or the same fall above release, is
	// not; nor is a fall seen over less than a window.
	fall := func(avail, perWindow uint64, span time.Duration) []sample {
		var ss []sample
		n := int(span / (100 * time.Millisecond))
		for i := 0; i <= n; i++ {
			ss = append(ss, sample{at: t0.Add(time.Duration(i) * 100 * time.Millisecond), total: 1000,
				avail: avail + perWindow*uint64(n-i)/10, psi: true})
		}
		return ss
	}
	// then appends samples every 100 ms after ss, at the avails given.
	then := func(ss []sample, avails ...uint64) []sample {
		ss = slices.Clone(ss)
		for _, a := range avails {
			last := ss[len(ss)-1]
			last.at, last.avail = last.at.Add(100*time.Millisecond), a
			ss = append(ss, last)
		}
		return ss
	}
	for name, tc := range map[string]struct {
		ss   []sample
		want level
	}{
		"storm below release":       {then(fall(190, 120, time.Second), 178), levelDanger},
		"slow fall below release":   {fall(190, 40, time.Second), levelLow},
		"storm above release":       {fall(210, 120, time.Second), levelOK},
		"storm, half a window seen": {fall(190, 120, 500*time.Millisecond), levelLow},
		// A load that stops where a storm would be judged: the sample
		// that first shows the fall only arms; held after it, never
		// danger. Going on after a pause (a hog between bursts): danger.
		"load stopped at the line":     {then(fall(190, 120, 900*time.Millisecond), 178, 178, 178), levelLow},
		"burst after a pause":          {then(fall(190, 120, 900*time.Millisecond), 178, 178, 160), levelDanger},
		"below minAvailable, stopped":  {then(fall(98, 30, 900*time.Millisecond), 95, 95), levelLow},
		"below minAvailable, going on": {then(fall(98, 30, 900*time.Millisecond), 95, 92), levelDanger},
	} {
		t.Run(name, func(t *testing.T) {
			if got := judged(tc.ss).level; got != tc.want {
				t.Errorf("level %v, want %v", got, tc.want)
			}
		})
	}
	// Too little history for a window: no pressure yet.
	if got := judged([]sample{{at: t0, total: 1000, avail: 90, psi: true},
		{at: t0.Add(100 * time.Millisecond), total: 1000, avail: 90, some: 100_000, psi: true}}).level; got != levelLow {
		t.Errorf("100 ms of history: %v, want low (no judgement on pressure yet)", got)
	}
}

func TestHistoryGrowthAndPrune(t *testing.T) {
	t0 := time.Unix(0, 0)
	h := &history{}
	for i, c := range []uint64{500, 100, 200, 400, 450} {
		h.add(sample{at: t0.Add(time.Duration(i) * 10 * time.Second), committed: c}, 25*time.Second)
	}
	if len(h.s) != 3 {
		t.Errorf("kept %d samples, want the last 25 s (3)", len(h.s))
	}
	if g := h.growth(25 * time.Second); g != 250 {
		t.Errorf("growth %d, want 450-200", g)
	}
}

// TestCmdlineWithinGivesUp: a command line that does not come (here a FIFO
// nobody writes; on a node, a hog holding its mmap_lock in direct reclaim)
// costs the choice its deadline, not the wait.
func TestCmdlineWithinGivesUp(t *testing.T) {
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "42"), 0o755))
	must(t, unix.Mkfifo(filepath.Join(dir, "42", "cmdline"), 0o644))
	must(t, os.MkdirAll(filepath.Join(dir, "44"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "44", "cmdline"), []byte("python3\x00jupyter-lab\x00"), 0o644))
	pfs, err := procfs.NewFS(dir)
	must(t, err)
	start := time.Now()
	got := cmdlinesWithin(pfs, []int{42, 44}, 2*time.Second)
	if got[42] != nil {
		t.Errorf("blocked read: %q", got[42])
	}
	if c := got[44]; len(c) != 2 || c[1] != "jupyter-lab" {
		t.Errorf("cmdline of 44 %q: the other reads must not wait for the blocked one", c)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("gave up after %v", d)
	}
	// Unblock the reader left behind.
	if f, err := os.OpenFile(filepath.Join(dir, "42", "cmdline"), os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
		f.Close()
	}
}
