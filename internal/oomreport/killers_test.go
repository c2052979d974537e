package oomreport

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"podwarden/internal/kmsg"
)

// Each killer's line as each carrier brings it: bare (a kubelet.log, a
// container log), another program's syslog or journal record.
func TestKillers(t *testing.T) {
	tests := map[string]struct {
		rec                kmsg.Record
		killer, scope, pod string
		pid                int
		summary            string
	}{
		"earlyoom journal": {rec: kmsg.Record{Program: "earlyoom", Text: `sending SIGTERM to process 42 uid 1000 "stress": badness 999, VmRSS 2048 MiB`},
			killer: KillerEarlyoom, scope: "node", pid: 42, summary: "earlyoom sent SIGTERM to stress (pid 42, 2.0 GiB resident) before the kernel's OOM killer had to act: badness 999"},
		"earlyoom no-op self test": {rec: kmsg.Record{Program: "earlyoom", Text: `sending 0 (no-op signal) to process 42 uid 0 "x": badness 1, VmRSS 1 MiB`}},
		"earlyoom name with quotes": {rec: kmsg.Record{Program: "earlyoom", Text: `sending SIGKILL to process 7 uid 0 "a": b": oom_score 5, VmRSS 1 MiB, cmdline "x"`},
			killer: KillerEarlyoom, scope: "node", pid: 7, summary: `earlyoom sent SIGKILL to a": b (pid 7, 1.0 MiB resident) before the kernel's OOM killer had to act: oom_score 5`},
		"oomd bare": {rec: kmsg.Record{Carrier: kmsg.CarrierBare, Text: "Killed /system.slice/build.service due to memory used (9) / total (10) and swap used (9) / total (10) being more than 90.00%"},
			killer: KillerOomd, scope: "cgroup", summary: "systemd-oomd killed every process in /system.slice/build.service due to memory used (9) / total (10) and swap used (9) / total (10) being more than 90.00%"},
		"oomd other reason": {rec: kmsg.Record{Program: "systemd-oomd", Text: "Killed /x due to boredom"}},
		"kubelet.log bare": {rec: kmsg.Record{Carrier: kmsg.CarrierBare, Text: `I1207 04:22:27.400000    1433 eviction_manager.go:642] "Eviction manager: pod is evicted successfully" pod="ml/train-7"`},
			killer: KillerKubelet, scope: "node", pod: "ml/train-7", summary: "the kubelet evicted pod ml/train-7"},
		"kubelet before 1.20": {rec: kmsg.Record{Program: "kubelet", Text: `I1207 04:22:27.400000    1433 eviction_manager.go:578] eviction manager: pod train-7_ml(6f1c2b4a-1d2e-4f5a-9b8c-7d6e5f4a3b2c) is evicted successfully`},
			killer: KillerKubelet, scope: "node", pod: "ml/train-7", summary: "the kubelet evicted pod ml/train-7"},
		"kubelet before 1.20 cut":       {rec: kmsg.Record{Program: "kubelet", Text: `I1207 04:22:27.400000    1433 eviction_manager.go:578] eviction manager: pod train-7_ml(6f1c2b4a is evicted successfully`}},
		"kubelet pod without namespace": {rec: kmsg.Record{Program: "kubelet", Text: `I1207 04:22:27.400000    1433 eviction_manager.go:642] "Eviction manager: pod is evicted successfully" pod="x"`}},
		"podwarden dry run":             {rec: kmsg.Record{Carrier: kmsg.CarrierBare, Text: `time=2026-12-07T04:33:00Z level=WARN msg="would end process under memory pressure (dry run)" pid=1 comm=x`}},
		"podwarden journal": {rec: kmsg.Record{Program: "podwarden-agent", Text: `time=2026-12-07T04:33:00Z level=WARN msg="ended process under memory pressure" pod=a/b cgroup=/kubepods/besteffort/pod9d0e1f2a-3b4c-4d5e-8f6a-7b8c9d0e1f2a/abc scope=node comm="my app" pid=900 rss_bytes=1048576 signals=SIGKILL why="x y"`},
			killer: KillerPodwarden, scope: "node", pod: "a/b", pid: 900, summary: "podwarden ended my app (pid 900, 1.0 MiB resident) in pod a/b with SIGKILL before the kernel's OOM killer had to act: x y"},
		"podwarden forged pid":  {rec: kmsg.Record{Carrier: kmsg.CarrierBare, Text: `msg="ended process under memory pressure" pid=-1`}},
		"kernel line untouched": {rec: kmsg.Record{Carrier: kmsg.CarrierBare, Text: "Killed process 1 (init) total-vm:1kB"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a := NewAssembler()
			reps := a.Add(tc.rec)
			if tc.killer == "" {
				if len(reps) != 0 {
					t.Fatalf("want no report, got %+v", reps)
				}
				return
			}
			if len(reps) != 1 {
				t.Fatalf("got %d reports", len(reps))
			}
			r := reps[0]
			if r.Killer != tc.killer || r.Kind.String() != tc.scope || r.pod() != tc.pod || r.Diagnosis.Summary != tc.summary {
				t.Errorf("killer %q scope %q pod %q summary %q", r.Killer, r.Kind, r.pod(), r.Diagnosis.Summary)
			}
			if tc.pid != 0 && (len(r.Victims) != 1 || r.Victims[0].PID != tc.pid) {
				t.Errorf("victims %+v, want pid %d", r.Victims, tc.pid)
			}
			checkAppendJSON(t, &r)
		})
	}
}

// An eviction logged at -v=3 has two lines: one kill.
func TestKubeletEvictionOnce(t *testing.T) {
	a := NewAssembler()
	var reps []Report
	for _, l := range []string{
		`I1207 04:22:25.1 1 eviction_manager.go:1] "Eviction manager: must evict pod(s) to reclaim" resourceName="memory"`,
		`I1207 04:22:25.2 1 eviction_manager.go:2] "Evicting pod" pod="ml/a" podUID="u1" message="low"`,
		`I1207 04:22:27.3 1 eviction_manager.go:3] "Eviction manager: pod is evicted successfully" pod="ml/a"`,
		`I1207 04:22:28.3 1 eviction_manager.go:3] "Eviction manager: pod is evicted successfully" pod="ml/b"`,
	} {
		reps = append(reps, a.Add(kmsg.Record{Program: "kubelet", Text: l, Time: time.Unix(1, 0)})...)
	}
	if len(reps) != 2 || reps[0].PodUID != "u1" || reps[0].Reason != "low" || reps[1].PodName != "b" || reps[1].Reason != "the node was low on memory" {
		t.Fatalf("reports %+v", reps)
	}
}

// FuzzKillers feeds any line to every killer's parser as every carrier
// brings it: no panic, and what comes out is a whole record.
func FuzzKillers(f *testing.F) {
	for _, p := range []string{"killer-earlyoom.log", "killer-systemd-oomd.log", "killer-kubelet-eviction.log", "killer-podwarden.log"} {
		b, err := os.ReadFile(filepath.Join("testdata", p))
		if err != nil {
			f.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			f.Add(l)
		}
	}
	f.Fuzz(func(t *testing.T, line string) {
		a := NewAssembler()
		for _, rec := range []kmsg.Record{{Program: "x", Text: line}, {Carrier: kmsg.CarrierBare, Text: line}} {
			for _, r := range a.Add(rec) {
				if r.Killer == KillerKernel || r.Killer == "" || r.Diagnosis.Summary == "" || len(r.Diagnosis.Codes) != 1 || r.Kind == "" {
					t.Fatalf("record %+v", r)
				}
				for _, v := range r.Victims {
					if v.PID <= 0 {
						t.Fatalf("victim pid %d", v.PID)
					}
				}
				checkAppendJSON(t, &r)
			}
		}
		for _, r := range parseAll(t, strings.NewReader(line)) {
			checkAppendJSON(t, &r)
		}
	})
}
