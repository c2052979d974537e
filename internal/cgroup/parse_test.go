package cgroup

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestParseEvents(t *testing.T) {
	for name, tc := range map[string]struct {
		in      string
		want    Events
		wantErr bool
	}{
		"6.x":                {in: "low 1\nhigh 2\nmax 3\noom 4\noom_kill 5\noom_group_kill 6\n", want: Events{Low: 1, High: 2, Max: 3, OOM: 4, OOMKill: 5, OOMGroupKill: 6}},
		"before 5.17":        {in: "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n", want: Events{Max: 9, OOM: 1, OOMKill: 1}},
		"unknown keys":       {in: "low 0\nsock_throttled 7\nmax 2\n", want: Events{Max: 2}},
		"empty":              {in: "", want: Events{}},
		"blank lines, no NL": {in: "\n\noom_kill 3", want: Events{OOMKill: 3}},
		"max uint64":         {in: "oom_kill 18446744073709551615\n", want: Events{OOMKill: math.MaxUint64}},
		"negative":           {in: "oom -1\n", wantErr: true},
		"overflow":           {in: "oom 18446744073709551616\n", wantErr: true},
		"no value":           {in: "oom\n", wantErr: true},
		"extra field":        {in: "oom 1 2\n", wantErr: true},
		"not a number":       {in: "oom one\n", wantErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := ParseEvents(strings.NewReader(tc.in))
			if (err != nil) != tc.wantErr || got != tc.want && !tc.wantErr {
				t.Errorf("ParseEvents(%q) = %+v, %v; want %+v, err %v", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestParseOOMControl(t *testing.T) {
	for name, tc := range map[string]struct {
		in      string
		want    Events
		wantErr bool
	}{
		"idle":          {in: "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n", want: Events{}},
		"killed":        {in: "oom_kill_disable 0\nunder_oom 0\noom_kill 12\n", want: Events{OOMKill: 12}},
		"stalled":       {in: "oom_kill_disable 1\nunder_oom 1\noom_kill 0\n", want: Events{OOMKillDisabled: true, UnderOOM: true}},
		"before 4.13":   {in: "oom_kill_disable 0\nunder_oom 1\n", want: Events{UnderOOM: true}},
		"garbage value": {in: "under_oom yes\n", wantErr: true},
		"one field":     {in: "under_oom\n", wantErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := ParseOOMControl(strings.NewReader(tc.in))
			if (err != nil) != tc.wantErr || got != tc.want && !tc.wantErr {
				t.Errorf("ParseOOMControl(%q) = %+v, %v; want %+v, err %v", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestParsePressure(t *testing.T) {
	for name, tc := range map[string]struct {
		in      string
		want    Pressure
		wantErr bool
	}{
		"memory": {
			in: "some avg10=0.12 avg60=3.45 avg300=67.89 total=1234567\nfull avg10=0.01 avg60=0.02 avg300=0.03 total=42\n",
			want: Pressure{
				Some: PSILine{Avg10: 0.12, Avg60: 3.45, Avg300: 67.89, Total: 1234567},
				Full: PSILine{Avg10: 0.01, Avg60: 0.02, Avg300: 0.03, Total: 42}},
		},
		"fields in any order": {
			in:   "some total=5 avg300=1.00 avg60=2.00 avg10=3.00\n",
			want: Pressure{Some: PSILine{Avg10: 3, Avg60: 2, Avg300: 1, Total: 5}},
		},
		"100 percent":            {in: "full avg10=100.00 avg60=100.00 avg300=100.00 total=1\n", want: Pressure{Full: PSILine{Avg10: 100, Avg60: 100, Avg300: 100, Total: 1}}},
		"unknown field and line": {in: "some avg10=0.00 avg60=0.00 avg300=0.00 total=0 avg1=5\nnew line\n", want: Pressure{}},
		"empty":                  {in: "", want: Pressure{}},
		"missing total":          {in: "some avg10=0.00 avg60=0.00 avg300=0.00\n", wantErr: true},
		"repeated instead of missing": {
			in: "some avg10=0.00 avg10=0.00 avg10=0.00 total=0\n", wantErr: true,
		},
		"NaN":         {in: "some avg10=NaN avg60=0.00 avg300=0.00 total=0\n", wantErr: true},
		"Inf":         {in: "some avg10=+Inf avg60=0.00 avg300=0.00 total=0\n", wantErr: true},
		"negative":    {in: "some avg10=-1.00 avg60=0.00 avg300=0.00 total=0\n", wantErr: true},
		"over 100":    {in: "some avg10=100.01 avg60=0.00 avg300=0.00 total=0\n", wantErr: true},
		"no equals":   {in: "some avg10 avg60=0.00 avg300=0.00 total=0\n", wantErr: true},
		"bad total":   {in: "some avg10=0.00 avg60=0.00 avg300=0.00 total=-3\n", wantErr: true},
		"bare kind":   {in: "some\n", wantErr: true},
		"empty value": {in: "full avg10= avg60=0.00 avg300=0.00 total=0\n", wantErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := ParsePressure(strings.NewReader(tc.in))
			if (err != nil) != tc.wantErr || got != tc.want && !tc.wantErr {
				t.Errorf("ParsePressure(%q) = %+v, %v; want %+v, err %v", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func FuzzParseEvents(f *testing.F) {
	f.Add([]byte("low 1\nhigh 2\nmax 3\noom 4\noom_kill 5\noom_group_kill 6\n"))
	f.Add([]byte("oom_kill 18446744073709551615"))
	f.Add([]byte("oom -1\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := ParseEvents(bytes.NewReader(b))
		if err != nil {
			return
		}
		// What parses must survive a print and re-parse unchanged.
		out := fmt.Sprintf("low %d\nhigh %d\nmax %d\noom %d\noom_kill %d\noom_group_kill %d\n",
			ev.Low, ev.High, ev.Max, ev.OOM, ev.OOMKill, ev.OOMGroupKill)
		again, err := ParseEvents(strings.NewReader(out))
		if err != nil || again != ev {
			t.Fatalf("round trip of %+v: %+v, %v", ev, again, err)
		}
	})
}

func FuzzParseOOMControl(f *testing.F) {
	f.Add([]byte("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"))
	f.Add([]byte("oom_kill_disable 1\nunder_oom 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := ParseOOMControl(bytes.NewReader(b))
		if err != nil {
			return
		}
		// oom_control carries none of the v2-only counters.
		if ev.Low != 0 || ev.High != 0 || ev.Max != 0 || ev.OOM != 0 || ev.OOMGroupKill != 0 {
			t.Fatalf("ParseOOMControl(%q) set v2 counters: %+v", b, ev)
		}
	})
}

func FuzzParsePressure(f *testing.F) {
	f.Add([]byte("some avg10=0.12 avg60=3.45 avg300=67.89 total=1234567\nfull avg10=0.01 avg60=0.02 avg300=0.03 total=42\n"))
	f.Add([]byte("some avg10=NaN avg60=0.00 avg300=0.00 total=0\n"))
	f.Add([]byte("full total=1 avg10=1e2 avg60=0x1p-2 avg300=.5\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePressure(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, l := range []PSILine{p.Some, p.Full} {
			for _, x := range []float64{l.Avg10, l.Avg60, l.Avg300} {
				if math.IsNaN(x) || x < 0 || x > 100 {
					t.Fatalf("ParsePressure(%q) = %+v: average out of 0..100", b, p)
				}
			}
		}
	})
}
