package kubeevent

import (
	"strings"
	"testing"

	"podwarden/internal/oomreport"
)

func TestPodMessage(t *testing.T) {
	for name, tc := range map[string]struct {
		o    OOM
		want string
	}{
		"node oom, single": {
			o:    OOM{Comm: "python", PID: 1234, Container: "notebook", Kind: oomreport.KindNode, AnonRSSBytes: 7_623_000_000},
			want: "OOMKilled process python (pid 1234) in container notebook: node out of memory, 7.1 GiB anon; other processes kept running",
		},
		"cgroup oom, group kill": {
			o:    OOM{Comm: "php-fpm", PID: 77, Container: "web", Kind: oomreport.KindCgroup, AnonRSSBytes: 300 << 20, GroupKill: true, Bystanders: 11},
			want: "OOMKilled process php-fpm (pid 77) in container web: memory limit reached, 300.0 MiB anon; the whole container was killed (memory.oom.group=1) with 11 other processes",
		},
		"one bystander": {
			o:    OOM{Comm: "java", PID: 5, Container: "app", Kind: oomreport.KindCgroup, GroupKill: true, Bystanders: 1},
			want: "OOMKilled process java (pid 5) in container app: memory limit reached; the whole container was killed (memory.oom.group=1) with 1 other process",
		},
		"counted in memory.events": {
			o:    OOM{Container: "notebook", Kills: 1},
			want: "OOMKilled 1 process in container notebook: out of memory; the kernel log is not readable here, so the process is not named (memory.events)",
		},
		"several counted, limit": {
			o:    OOM{Container: "web", Kind: oomreport.KindCgroup, Kills: 3},
			want: "OOMKilled 3 processes in container web: memory limit reached; the kernel log is not readable here, so the process is not named (memory.events)",
		},
		"unknown comm and kind": {
			o:    OOM{PID: 9},
			want: "OOMKilled process ? (pid 9): out of memory; other processes kept running",
		},
	} {
		t.Run(name, func(t *testing.T) {
			if got := PodMessage(tc.o); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestNodeMessage(t *testing.T) {
	for _, tc := range []struct {
		o    OOM
		want string
	}{
		{OOM{HostVictims: []string{"sshd (pid 812)", "chronyd (pid 640)"}}, "node out of memory: the OOM killer killed host processes sshd (pid 812), chronyd (pid 640)"},
		{OOM{Comm: "sshd", PID: 812, AnonRSSBytes: 2048}, "node out of memory: the OOM killer killed host process sshd (pid 812) (2.0 KiB anon)"},
		{OOM{}, "node out of memory: the OOM killer killed host processes"},
	} {
		if got := NodeMessage(tc.o); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
}

func TestPressureMessage(t *testing.T) {
	base := PressureKill{Comm: "python3", PID: 812, Container: "notebook", RSSBytes: 412 << 20,
		Signals: []string{"SIGINT", "SIGTERM"}, Scope: ScopeNode, Available: 35 << 20, Total: 708 << 20, StallPct: 38,
		Why: "container notebook grew 380.0 MiB in 30s; largest process after keeping jupyter-lab (pid 7)"}
	mod := func(f func(*PressureKill)) PressureKill { k := base; f(&k); return k }
	for name, tc := range map[string]struct {
		k    PressureKill
		want string
	}{
		"killed": {base, "podwarden ended process python3 (pid 812) in container notebook with SIGINT, SIGTERM before the kernel's OOM killer had to: " +
			"412.0 MiB resident; node memory low: 4% available (35.0 MiB of 708.0 MiB), tasks stalled on memory 38% of the time; " +
			"why: container notebook grew 380.0 MiB in 30s; largest process after keeping jupyter-lab (pid 7)"},
		"dry run": {mod(func(k *PressureKill) { k.Outcome, k.Signals, k.Why = OutcomeDryRun, []string{"SIGINT"}, "" }),
			"podwarden would end process python3 (pid 812) in container notebook (dry run, nothing sent): 412.0 MiB resident; " +
				"node memory low: 4% available (35.0 MiB of 708.0 MiB), tasks stalled on memory 38% of the time"},
		"container limit, no PSI": {mod(func(k *PressureKill) {
			k.Scope, k.Available, k.Total, k.StallPct, k.Why, k.Signals = ScopeContainer, 1<<20, 256<<20, -1, "", []string{"SIGKILL"}
		}), "podwarden ended process python3 (pid 812) in container notebook with SIGKILL before the kernel's OOM killer had to: " +
			"412.0 MiB resident; container memory low: 0% available (1.0 MiB of 256.0 MiB)"},
		"nothing killable": {mod(func(k *PressureKill) {
			k.Outcome, k.Comm, k.PID, k.Why = OutcomeNothingKillable, "", 0, "kept: jupyter-lab (pid 7)"
		}),
			"podwarden found nothing it may end in container notebook: every process is kept: node memory low: 4% available " +
				"(35.0 MiB of 708.0 MiB), tasks stalled on memory 38% of the time; why: kept: jupyter-lab (pid 7)"},
	} {
		t.Run(name, func(t *testing.T) {
			if got := PressureMessage(tc.k); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
	long := mod(func(k *PressureKill) { k.Why = strings.Repeat("x", 2000) })
	if m := PressureMessage(long); len(m) != maxMessage || !strings.HasSuffix(m, "...") {
		t.Errorf("long message: %d bytes", len(m))
	}
}
