package oomreport

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func FuzzAssembler(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.log")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(string(b))
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		reps, strays := parseWithStrays(t, strings.NewReader(s))
		for _, st := range strays {
			if st.Why == "" || len(st.Text) > 120 {
				t.Fatalf("stray %+v", st)
			}
		}
		for _, r := range reps {
			if r.Kind != "node" && r.Kind != "cgroup" && (r.Kind != "unknown" || len(r.Victims) > 0) {
				t.Fatalf("kind %q with %d victims", r.Kind, len(r.Victims))
			}
			if r.Killer != KillerKernel {
				continue // FuzzKillers
			}
			if len(r.Victims) == 0 && (r.Invoker.Comm == "" || !r.Incomplete || !slices.Contains(r.Missing, "kill line")) {
				t.Fatalf("report without a victim is not an incomplete report of its invoker: %+v", r)
			}
			seen := map[int]bool{}
			for _, v := range r.Victims {
				if seen[v.PID] {
					t.Fatalf("victim %d twice", v.PID)
				}
				seen[v.PID] = true
			}
		}
	})
}

func BenchmarkAssemble(b *testing.B) {
	in, err := os.ReadFile("testdata/seed-6.1-memcg-docker.log")
	if err != nil {
		b.Fatal(err)
	}
	big := strings.Repeat(string(in), 200)
	b.SetBytes(int64(len(big)))
	for b.Loop() {
		if n, _ := assembleAll(b, strings.NewReader(big)); len(n) != 200 {
			b.Fatalf("got %d reports", len(n))
		}
	}
}

// BenchmarkAssembleMixed is closer to a real node log: each report is
// followed by 200 unrelated lines.
func BenchmarkAssembleMixed(b *testing.B) {
	in, err := os.ReadFile("testdata/seed-6.1-node.log")
	if err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	for range 100 {
		sb.Write(in)
		for range 200 {
			sb.WriteString("[426200.000000] eth0: link up, 1000Mbps, full-duplex\n")
		}
	}
	big := sb.String()
	b.SetBytes(int64(len(big)))
	for b.Loop() {
		if n, _ := assembleAll(b, strings.NewReader(big)); len(n) != 100 {
			b.Fatalf("got %d reports", len(n))
		}
	}
}
