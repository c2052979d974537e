package policy

import (
	"strings"
	"testing"
)

func TestParseLevel(t *testing.T) {
	tests := map[string]struct {
		in   string
		want Level
		err  string
	}{
		"percent":          {in: "10%", want: Level{Pct: 10}},
		"bare number":      {in: "12.5", want: Level{Pct: 12.5}},
		"size":             {in: "2GiB", want: Level{Bytes: 2 << 30}},
		"kubernetes size":  {in: "512Mi", want: Level{Bytes: 512 << 20}},
		"decimal size":     {in: "1.5G", want: Level{Bytes: 1_500_000_000}},
		"both, space":      {in: "10% 2GiB", want: Level{Pct: 10, Bytes: 2 << 30}},
		"both, comma":      {in: "4GiB, 20%", want: Level{Pct: 20, Bytes: 4 << 30}},
		"zero":             {in: "0", want: Level{}},
		"empty":            {in: " ", err: "want a percentage, a size or both"},
		"word":             {in: "ten", err: `"ten" is not a percentage like 10% or a size like 2GiB`},
		"bytes, no unit":   {in: "10% 2000000000", err: "not a percentage"},
		"two sizes":        {in: "1Gi 2Gi", err: "two sizes"},
		"three parts":      {in: "1% 1Gi 2Gi", err: "want a percentage"},
		"negative":         {in: "-5%", err: "not a percentage"},
		"over 100":         {in: "150%", err: "not a percentage"},
		"unknown unit":     {in: "2PB", err: "not a percentage"},
		"huge":             {in: "9999999999Ti", err: "not a percentage"},
		"unit alone":       {in: "GiB", err: "not a percentage"},
		"trailing garbage": {in: "2GiBx", err: "not a percentage"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseLevel(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseLevel(%q) = %+v, %v; want an error saying %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseLevel(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
			if back, err := ParseLevel(got.String()); err != nil || back != got {
				t.Errorf("String %q reads back as %+v, %v", got.String(), back, err)
			}
		})
	}
}

func FuzzParseLevel(f *testing.F) {
	for _, s := range []string{"10%", "2GiB", "10% 2GiB", "1.5G,5", "0", "", "%", "1e3Gi", "NaN%", "Inf"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLevel(s)
		if err != nil {
			return
		}
		if l.Pct < 0 || l.Pct > 100 || l.Pct != l.Pct || l.Bytes >= 1<<62 {
			t.Fatalf("ParseLevel(%q) = %+v: out of range", s, l)
		}
		back, err := ParseLevel(l.String())
		if err != nil || back.Pct != l.Pct || back.Bytes != l.Bytes && l.Bytes >= 1<<20 && float64(back.Bytes) < float64(l.Bytes)*0.999 {
			t.Fatalf("ParseLevel(%q) = %+v, String %q reads back as %+v, %v", s, l, l.String(), back, err)
		}
	})
}

// TestDefaultThresholdsScale: the percentage binds on small nodes, the
// size on big ones; the order holds on every size from 1 GiB to 4 TiB.
func TestDefaultThresholdsScale(t *testing.T) {
	const gib = 1 << 30
	tests := []struct {
		name  string
		total uint64
		want  Levels
	}{
		{"4 GiB node", 4 * gib, Levels{Min: 4 * gib / 10, Critical: 4 * gib * 4 / 100, Release: 4 * gib / 5}},
		{"16 GiB node", 16 * gib, Levels{Min: 16 * gib / 10, Critical: 16 * gib * 4 / 100, Release: 16 * gib / 5}},
		{"32 GiB node", 32 * gib, Levels{Min: 2 * gib, Critical: 768 << 20, Release: 4 * gib}},
		{"512 GiB node", 512 * gib, Levels{Min: 2 * gib, Critical: 768 << 20, Release: 4 * gib}},
		{"1 TiB node", 1024 * gib, Levels{Min: 2 * gib, Critical: 768 << 20, Release: 4 * gib}},
	}
	for _, tc := range tests {
		got := DefaultNodeThresholds.Resolve(tc.total)
		// Percentages of a size are rounded down to the byte.
		if d := int64(got.Min) - int64(tc.want.Min); d < -1 || d > 1 || absDiff(got.Critical, tc.want.Critical) > 1 || absDiff(got.Release, tc.want.Release) > 1 {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	for total := uint64(gib); total <= 4096*gib; total += total / 8 {
		for _, th := range []Thresholds{DefaultNodeThresholds, DefaultContainerThresholds} {
			l := th.Resolve(total)
			if l.Critical >= l.Min || l.Min >= l.Release || l.Release >= total {
				t.Fatalf("%d bytes: %+v out of order", total, l)
			}
		}
	}
}

func absDiff(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return b - a
}

// TestResolveOrdersMixedLevels: a percentage-only minAvailable beside a
// sized releaseAvailable would cross on a big node; Resolve keeps release
// above min there, so an episode can end.
func TestResolveOrdersMixedLevels(t *testing.T) {
	th := Thresholds{MinAvailable: 8, ReleaseAvailable: 20, ReleaseAvailableBytes: 4 << 30, CriticalAvailableBytes: 1 << 30}
	if err := validateThresholds(th); err != "" {
		t.Fatalf("validate: %s", err)
	}
	l := th.Resolve(1 << 40)
	if l.Min != th.Min().Of(1<<40) || l.Min < 80<<30 || l.Release <= l.Min || l.Critical != 1<<30 {
		t.Errorf("1 TiB: %+v", l)
	}
	l = th.Resolve(4 << 30)
	if l.Critical > l.Min {
		t.Errorf("4 GiB: critical %d above min %d", l.Critical, l.Min)
	}
}

func TestValidateThresholdSizes(t *testing.T) {
	tests := map[string]struct {
		th   Thresholds
		want string
	}{
		"defaults":         {DefaultNodeThresholds, ""},
		"sizes only":       {Thresholds{MinAvailableBytes: 1 << 30, ReleaseAvailableBytes: 2 << 30}, ""},
		"no min":           {Thresholds{ReleaseAvailable: 20}, "minAvailable: needs a percentage, a size or both"},
		"release size low": {Thresholds{MinAvailableBytes: 2 << 30, ReleaseAvailableBytes: 1 << 30}, "releaseAvailable: 1GiB must be above minAvailable 2GiB"},
		"critical size":    {Thresholds{MinAvailableBytes: 1 << 30, CriticalAvailableBytes: 1 << 30, ReleaseAvailableBytes: 2 << 30}, "criticalAvailable: 1GiB must be below minAvailable 1GiB"},
	}
	for name, tc := range tests {
		if got := validateThresholds(tc.th); !strings.Contains(got, tc.want) || tc.want == "" && got != "" {
			t.Errorf("%s: %q, want %q", name, got, tc.want)
		}
	}
}

func validateThresholds(th Thresholds) string {
	var errs []string
	th.check(func(f string, err error) {
		if err != nil {
			errs = append(errs, f+": "+err.Error())
		}
	})
	return strings.Join(errs, "; ")
}

// TestParseThresholdSizes: the YAML forms a chart user writes.
func TestParseThresholdSizes(t *testing.T) {
	c, err := Parse(strings.NewReader("preempt:\n  node: {minAvailable: 10% 3GiB, criticalAvailable: 1Gi, releaseAvailable: \"20%, 6GiB\"}\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := Thresholds{MinAvailable: 10, MinAvailableBytes: 3 << 30, CriticalAvailableBytes: 1 << 30, ReleaseAvailable: 20, ReleaseAvailableBytes: 6 << 30}
	if c.Preempt.Node != want {
		t.Errorf("node = %+v, want %+v", c.Preempt.Node, want)
	}
}
