package procfs

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkScan scans the live /proc per field set and worker count. The
// "ps" set is what `podwarden ps` shows (the columns of
// `ps -e -H -o pid,ppid,comm,oom,oomadj`). Run with many processes, e.g.
// under bench/ps.sh's 5,000 sleepers, to see the numbers that matter.
func BenchmarkScan(b *testing.B) {
	fsys, err := NewFS("/proc")
	if err != nil {
		b.Skip(err)
	}
	sets := []struct {
		name   string
		fields Field
	}{
		{"list", 0},
		{"stat", FieldStat},
		{"ps", FieldStat | FieldOOMScore | FieldOOMScoreAdj},
		{"status", FieldStatus},
		{"cmdline", FieldCmdline},
		{"cgroup", FieldCgroup},
		{"all", FieldAll},
	}
	for _, s := range sets {
		for _, w := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("%s/workers=%d", s.name, w), func(b *testing.B) {
				fsys := fsys.WithWorkers(w)
				b.ReportAllocs()
				n := 0
				for b.Loop() {
					procs, err := fsys.Scan(context.Background(), s.fields)
					if err != nil {
						b.Fatal(err)
					}
					n = len(procs)
				}
				b.ReportMetric(float64(n), "procs")
			})
		}
	}
}

func BenchmarkParseStatus(b *testing.B) {
	in := []byte(liveStatus)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseStatus(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseStat(b *testing.B) {
	in := []byte(liveStat)
	b.ReportAllocs()
	var p Proc
	for b.Loop() {
		if err := parseStat(in, &p); err != nil {
			b.Fatal(err)
		}
	}
}
