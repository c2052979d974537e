package oomreport

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// checkAppendJSON fails unless AppendJSON writes what json.Marshal does.
func checkAppendJSON(t *testing.T, r *Report) {
	t.Helper()
	want, werr := json.Marshal(r)
	got, gerr := r.AppendJSON(nil)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("json.Marshal err %v, AppendJSON err %v", werr, gerr)
	}
	if werr == nil && !bytes.Equal(got, want) {
		t.Fatalf("AppendJSON differs from encoding/json:\n got %s\nwant %s", got, want)
	}
}

func TestAppendJSONGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.log")
	kfiles, _ := filepath.Glob("testdata/*.kmsg")
	for _, f := range append(files, kfiles...) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			reps := parseAll(t, bytes.NewReader(in))
			if len(reps) == 0 {
				t.Fatal("no reports")
			}
			for i := range reps {
				checkAppendJSON(t, &reps[i])
			}
		})
	}
}

// FuzzAppendJSON compares the writer with encoding/json on reports parsed
// from the fuzzed text and on a report with every field set from it, so
// escaping, number formatting and the empty/nil cases are all covered.
func FuzzAppendJSON(f *testing.F) {
	// Two small logs only: the fuzzer minimizes every new input, which
	// is slow on whole reports; TestAppendJSONGolden covers the rest.
	for _, p := range []string{"testdata/seed-6.1-node-pair.log", "testdata/synth-5.4-node-protection-gap.log"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b), 426.5, int64(-997), uint8(0))
	}
	f.Add("a<b>&\"\\\x00\x1f\x7f\u2028\u2029\xff\xc3(", 1e-7, int64(math.MinInt64), uint8(0xff))
	f.Add("", 1e21, int64(0), uint8(0x55))
	f.Add("x", math.Copysign(0, -1), int64(1), uint8(0xaa))
	f.Fuzz(func(t *testing.T, s string, mono float64, n int64, flags uint8) {
		if len(s) < 1<<16 {
			for _, r := range parseAll(t, strings.NewReader(s)) {
				checkAppendJSON(t, &r)
			}
		}
		r := filledReport(s, mono, n, flags)
		checkAppendJSON(t, &r)
	})
}

// filledReport sets every field of a Report from s and n; the bits of
// flags choose which optional parts are nil, empty or set.
func filledReport(s string, mono float64, n int64, flags uint8) Report {
	on := func(bit uint) bool { return flags&(1<<bit) != 0 }
	pick := func(bit uint) string {
		if on(bit) {
			return s
		}
		return ""
	}
	c := &Counter{UsageKB: n, LimitKB: -n, Failcnt: n / 3}
	order, adj := int(n>>1), int(n>>2)
	r := Report{
		Killer: s, Reason: pick(3), Monotonic: mono, Stamp: pick(3), Line: int(n >> 3), Kind: Kind(s), Kernel: pick(0), Constraint: s, Nodemask: pick(1), Cpuset: pick(2),
		MemsAllowed: pick(3), OOMMemcg: s, TaskMemcg: s,
		Invoker: Invoker{Comm: pick(5), PID: int(n), GFPMask: pick(4), Order: &order, OOMScoreAdj: &adj},
		Tasks: []Task{{PID: int(n), UID: 1, TGID: 2, TotalVM: n, RSS: n, RSSAnon: -1, RSSFile: -1, RSSShmem: -1,
			PgtablesBytes: n, Swapents: n, OOMScoreAdj: -997, Name: s, has: uint16(n)}},
		Victims: []Victim{{PID: int(n), Comm: s, UID: 3, TotalVMKB: n, AnonRSSKB: n, FileRSSKB: n, ShmemRSSKB: n,
			PgtablesKB: n, OOMScoreAdj: int(n), Cgroup: pick(6), PodUID: s, PodNamespace: pick(2), PodName: pick(2),
			ContainerID: pick(1), GroupMember: on(5), RSSKB: n, Signals: []string{pick(4), s}, has: uint8(n)}},
		GroupKillCgroup: s, Reaped: []Reaped{{PID: int(n), Comm: s, AnonRSSKB: n, FileRSSKB: n, ShmemRSSKB: n}},
		PodUID: pick(0), PodNamespace: pick(1), PodName: pick(1), ContainerID: s, Diagnosis: Diagnosis{Codes: []string{s, DiagNodeOOM}, Summary: s},
		Incomplete: on(6), Missing: []string{s},
		MemInfo: map[string]int64{s: n, s + "a": -n, "b" + s: 0},
	}
	if on(7) {
		r.Time = time.Unix(n%(1<<35), n%1e9).In(time.FixedZone(s, int(n%86400)))
		r.Memcg = &Memcg{UsageKB: n, LimitKB: n, Failcnt: n, StatsFor: pick(0), Stats: map[string]int64{s: n, "anon": 1}}
		if on(1) {
			r.Memcg.Swap, r.Memcg.MemSwap = c, c
		}
		if on(2) {
			r.Memcg.Kmem = c
		}
	} else {
		// The zero and empty forms: omitted fields, null and [] slices.
		r.Tasks, r.Reaped, r.Missing, r.MemInfo = nil, []Reaped{}, []string{}, map[string]int64{}
		r.Victims, r.Diagnosis.Codes = nil, nil
		r.Invoker = Invoker{Comm: pick(5), PID: int(n) & 1}
		if on(3) {
			r.Victims, r.Diagnosis.Codes = []Victim{}, []string{}
		}
		if on(4) {
			r.Memcg = &Memcg{Stats: map[string]int64{}}
		}
	}
	return r
}
