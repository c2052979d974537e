package oomreport

import "testing"

func TestDedup(t *testing.T) {
	kill := func(line int, mono float64, pid int, anon int64) *Report {
		return &Report{Killer: KillerKernel, Line: line, Monotonic: mono, Victims: []Victim{{PID: pid, Comm: "stress", AnonRSSKB: anon}}}
	}
	var d Dedup
	steps := []struct {
		r      *Report
		repeat bool
		first  int
	}{
		{kill(1, 100.5, 42, 1000), false, 0},
		{kill(20, 0, 42, 1000), true, 1},        // the journal's copy: no time since boot
		{kill(40, 100.5, 42, 1000), true, 1},    // dmesg pasted twice
		{kill(60, 250.25, 42, 1000), false, 0},  // the same kill line later: a new kill
		{kill(80, 100.5, 42, 999), false, 0},    // other sizes
		{kill(90, 100.5, 43, 1000), false, 0},   // another pid
		{&Report{Line: 99}, false, 0},           // no victim: never a repeat
		{kill(100, 250.25, 42, 1000), true, 60}, // remembered in the old one's place
	}
	for i, s := range steps {
		first, repeat := d.Repeat(s.r)
		if repeat != s.repeat || first != s.first {
			t.Errorf("step %d (line %d): repeat %v of line %d, want %v of %d", i, s.r.Line, repeat, first, s.repeat, s.first)
		}
	}
	// The window is bounded: the oldest kill is forgotten.
	for pid := 1000; pid < 1000+dedupWindow; pid++ {
		d.Repeat(kill(pid, 1, pid, 1))
	}
	if len(d.seen) > dedupWindow || len(d.order) != dedupWindow {
		t.Fatalf("%d kills remembered, ring of %d", len(d.seen), len(d.order))
	}
	if _, repeat := d.Repeat(kill(1, 100.5, 42, 1000)); repeat {
		t.Error("a kill older than the window is still remembered")
	}
}
