package kmsg

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// TestDecodeLine covers every carrier the issue lists, one line each, and
// lines that look like carriers but are message text.
func TestDecodeLine(t *testing.T) {
	local := func(s string) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04:05.999999", s, time.Local)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	utc := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := map[string]struct {
		line   string
		year   int
		kind   lineKind
		want   Record
		indent int
	}{
		"dmesg": {line: "[ 5864.708440] memorymonster invoked oom-killer: gfp_mask=0xd0",
			kind: lineRecord, want: Record{Carrier: CarrierDmesg, Monotonic: 5864708440 * time.Microsecond, Text: "memorymonster invoked oom-killer: gfp_mask=0xd0"}},
		"dmesg call trace keeps its space": {line: "[    1.000001]  dump_stack+0x45/0x56",
			kind: lineRecord, want: Record{Carrier: CarrierDmesg, Monotonic: time.Second + time.Microsecond, Text: " dump_stack+0x45/0x56"}},
		"dmesg three fraction digits": {line: "[  12.5] x",
			kind: lineRecord, want: Record{Carrier: CarrierDmesg, Monotonic: 12500 * time.Millisecond, Text: "x"}},
		"caller id task": {line: "[   49.921978][ T6736] leaker invoked oom-killer:",
			kind: lineRecord, want: Record{Carrier: CarrierDmesg, Monotonic: 49921978 * time.Microsecond, Caller: "T6736", Text: "leaker invoked oom-killer:"}},
		"caller id cpu": {line: "[   50.167554][    C1] oom_reaper: reaped",
			kind: lineRecord, want: Record{Carrier: CarrierDmesg, Monotonic: 50167554 * time.Microsecond, Caller: "C1", Text: "oom_reaper: reaped"}},
		"caller id alone": {line: "[ T55] oom_reaper: reaped",
			kind: lineRecord, want: Record{Carrier: CarrierDmesg, Caller: "T55", Text: "oom_reaper: reaped"}},
		"dmesg -r priority": {line: "<4>[  455.498827] badsysprogram invoked oom-killer:",
			kind: lineRecord, want: Record{Carrier: CarrierDmesg, Priority: 4, Monotonic: 455498827 * time.Microsecond, Text: "badsysprogram invoked oom-killer:"}},
		"dmesg -x facility": {line: "kern  :warn  : [  455.498827] badsysprogram invoked oom-killer:",
			kind: lineRecord, want: Record{Carrier: CarrierDmesg, Monotonic: 455498827 * time.Microsecond, Text: "badsysprogram invoked oom-killer:"}},
		"dmesg -d delta": {line: "[  455.498827 <    0.000312>] x",
			kind: lineRecord, want: Record{Carrier: CarrierDmesg, Monotonic: 455498827 * time.Microsecond, Text: "x"}},
		"dmesg -T": {line: "[Thu Nov 26 21:00:00 2026] Out of memory: Killed process 1 (a)",
			kind: lineRecord, want: Record{Carrier: CarrierDmesgTime, Time: local("2026-11-26 21:00:00"), Text: "Out of memory: Killed process 1 (a)"}},
		"dmesg -T German": {line: "[Do Nov 26 21:00:00 2026] x",
			kind: lineRecord, want: Record{Carrier: CarrierDmesgTime, Stamp: "Do Nov 26 21:00:00 2026", Text: "x"}},
		"dmesg -T Chinese": {line: "[四 11月 26 21:00:00 2026] x",
			kind: lineRecord, want: Record{Carrier: CarrierDmesgTime, Stamp: "四 11月 26 21:00:00 2026", Text: "x"}},
		"syslog host ts": {line: "Jan 28 19:58:45 localhost kernel: [  455.498827] badsysprogram invoked oom-killer:",
			kind: lineRecord, want: Record{Carrier: CarrierSyslog, Stamp: "Jan 28 19:58:45", Monotonic: 455498827 * time.Microsecond, Text: "badsysprogram invoked oom-killer:"}},
		"syslog no host": {line: "Jan  5 15:19:27 kernel: [ 5864.708440] x",
			kind: lineRecord, want: Record{Carrier: CarrierSyslog, Stamp: "Jan  5 15:19:27", Monotonic: 5864708440 * time.Microsecond, Text: "x"}},
		"syslog no ts": {line: "Aug 25 18:21:35 test-a3-60-17 kernel: Task in /docker/x killed",
			kind: lineRecord, want: Record{Carrier: CarrierSyslog, Stamp: "Aug 25 18:21:35", Text: "Task in /docker/x killed"}},
		"syslog call trace bracket is text": {line: "Aug 25 18:21:35 h kernel: [<ffffffff816861cc>] dump_stack+0x19/0x1b",
			kind: lineRecord, want: Record{Carrier: CarrierSyslog, Stamp: "Aug 25 18:21:35", Text: "[<ffffffff816861cc>] dump_stack+0x19/0x1b"}},
		"syslog year known": {line: "Jun 11 20:17:20 hyperv kernel: x", year: 2021,
			kind: lineRecord, want: Record{Carrier: CarrierSyslog, Time: local("2021-06-11 20:17:20"), Text: "x"}},
		"journal short-precise": {line: "Nov 26 21:00:00.123456 host kernel: x",
			kind: lineRecord, want: Record{Carrier: CarrierSyslog, Stamp: "Nov 26 21:00:00.123456", Text: "x"}},
		"busybox facility": {line: "Dec  9 12:04:12 router kern.warn kernel: [ 1.5] x",
			kind: lineRecord, want: Record{Carrier: CarrierSyslog, Stamp: "Dec  9 12:04:12", Monotonic: 1500 * time.Millisecond, Text: "x"}},
		"openwrt weekday and year": {line: "Mon Dec  9 12:04:12 2024 kern.warn kernel: [ 1.5] x",
			kind: lineRecord, want: Record{Carrier: CarrierSyslog, Time: local("2024-12-09 12:04:12"), Monotonic: 1500 * time.Millisecond, Text: "x"}},
		"rfc 3339 rsyslog": {line: "2024-01-05T15:19:27.708440+01:00 node1 kernel: [ 5864.708440] x",
			kind: lineRecord, want: Record{Carrier: CarrierSyslog, Time: utc("2024-01-05T15:19:27.708440+01:00"), Monotonic: 5864708440 * time.Microsecond, Text: "x"}},
		"journal short-iso": {line: "2021-06-11T20:17:20-0700 hyperv kernel: x",
			kind: lineRecord, want: Record{Carrier: CarrierSyslog, Time: utc("2021-06-11T20:17:20-07:00"), Text: "x"}},
		"dmesg iso": {line: "2024-01-05T15:19:27,708440+01:00 node1 kernel: x",
			kind: lineRecord, want: Record{Carrier: CarrierSyslog, Time: utc("2024-01-05T15:19:27.708440+01:00"), Text: "x"}},
		"journal short-monotonic": {line: "[  455.498827] hyperv kernel: x",
			kind: lineRecord, want: Record{Carrier: CarrierSyslog, Monotonic: 455498827 * time.Microsecond, Text: "x"}},
		"syslog other program": {line: "Jan  5 15:19:01 CRON[14500]: (root) CMD (touch /var/run/crond.sittercheck)",
			kind: lineNonKernel, want: Record{Carrier: CarrierSyslog, Stamp: "Jan  5 15:19:01", Program: "CRON", Text: "(root) CMD (touch /var/run/crond.sittercheck)"}},
		"syslog other program with host": {line: "Aug 25 18:21:35 test-a3-60-17 dockerd: time=x",
			kind: lineNonKernel, want: Record{Carrier: CarrierSyslog, Stamp: "Aug 25 18:21:35", Program: "dockerd", Text: "time=x"}},
		"kmsg": {line: `4,19685342,241227987454,-,caller=T12845;dumpsys invoked oom-killer: a\x0ab`,
			kind: lineRecord, want: Record{Carrier: CarrierKmsg, Priority: 4, Seq: 19685342, Monotonic: 241227987454 * time.Microsecond,
				Flags: "-", Caller: "T12845", Text: `dumpsys invoked oom-killer: a\x0ab`}},
		"journal banner": {line: "-- Journal begins at Thu 2021-06-10 06:17:06 MST, ends at Fri 2021-06-11 20:34:01 MST. --", kind: lineSkip},
		"bare":           {line: "leaker invoked oom-killer: gfp_mask=0x50", kind: lineBare, want: Record{Text: "leaker invoked oom-killer: gfp_mask=0x50"}},
		"indented bare":  {line: "  Out of memory: Killed process 4100 (containerd)", indent: 2, kind: lineBare, want: Record{Text: "Out of memory: Killed process 4100 (containerd)"}},
		"indented dmesg": {line: "     [41368.535735] x", indent: 5, kind: lineRecord, want: Record{Carrier: CarrierDmesg, Monotonic: 41368535735 * time.Microsecond, Text: "x"}},
		"mail quote":     {line: "> [ 1.000000] x", kind: lineRecord, want: Record{Carrier: CarrierDmesg, Monotonic: time.Second, Text: "x"}},
		"nested quote":   {line: ">> >  dump_stack", indent: 1, kind: lineBare, want: Record{Text: "dump_stack"}},
		"task row":       {line: "[  10192] 10188 10192 3783298", kind: lineBare, want: Record{Text: "[  10192] 10188 10192 3783298"}},
		"task header":    {line: "[  pid  ]   uid  tgid total_vm", kind: lineBare, want: Record{Text: "[  pid  ]   uid  tgid total_vm"}},
		"bracket text":   {line: "[ dump_slubinfo ]: ", kind: lineBare, want: Record{Text: "[ dump_slubinfo ]: "}},
		"snip":           {line: "<SNIP>", kind: lineBare, want: Record{Text: "<SNIP>"}},
		"capital bare":   {line: "Mem-Info:", kind: lineBare, want: Record{Text: "Mem-Info:"}},
		"month-like bare": {line: "Jan  5 15:19:27 not a syslog line", kind: lineBare,
			want: Record{Text: "Jan  5 15:19:27 not a syslog line"}},
		"blank": {line: "   \t", kind: lineBlank},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var c stampCache
			var got decodedLine
			decodeLine(&got, tc.line, tc.year, &c)
			if got.kind != tc.kind || got.indent != tc.indent {
				t.Fatalf("kind %d indent %d, want %d %d (%+v)", got.kind, got.indent, tc.kind, tc.indent, got.rec)
			}
			if got.kind == lineBlank || got.kind == lineSkip {
				return
			}
			g, w := got.rec, tc.want
			if g.Carrier != w.Carrier || g.Text != w.Text || g.Monotonic != w.Monotonic || g.Stamp != w.Stamp ||
				!g.Time.Equal(w.Time) || g.Caller != w.Caller || g.Priority != w.Priority || g.Seq != w.Seq || g.Flags != w.Flags || g.Program != w.Program {
				t.Errorf("got  %+v\nwant %+v", g, w)
			}
		})
	}
}

// decodeAll returns every record of in, failing the test on an error.
func decodeAll(t testing.TB, in string) ([]Record, *Decoder) {
	t.Helper()
	d := NewDecoder(strings.NewReader(in), time.UTC)
	var out []Record
	for {
		r, err := d.Next()
		if errors.Is(err, io.EOF) {
			return out, d
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
}

// TestDecoderJoins covers what happens across lines: continuation lines,
// wraps, dropped lines, banners and the line numbers records carry.
func TestDecoderJoins(t *testing.T) {
	type rec struct {
		line int
		text string
	}
	tests := map[string]struct {
		in   string
		want []rec
	}{
		"dmesg continuation and gap": {
			in:   "[  123.456789] a\n[  123.5] Memory cgroup stats for /x:\n[  123.6] anon 1\n                file 2\n<SNIP>\n[  124.0] end\n",
			want: []rec{{1, "a"}, {2, "Memory cgroup stats for /x:"}, {3, "anon 1\nfile 2"}, {5, "<SNIP>"}, {6, "end"}}},
		"kmsg dict lines": {
			in:   "4,1,5000000,-;hello\n SUBSYSTEM=x\n DEVICE=+usb:1-1\n4,2,6000000,-;world\n",
			want: []rec{{1, "hello"}, {4, "world"}}},
		"kmsg wrapped by a mail client (flowed)": {
			in: "4,19685342,241227987454,-,caller=T12845;dumpsys invoked oom-killer: \n" +
				"gfp_mask=0x40dc0(GFP_KERNEL|__GFP_COMP|__GFP_ZERO), order=3, \n" +
				"oom_score_adj=200\n" +
				`4,19685370,241227987540,-,caller=T12845;active_anon:174140 ` + "\n" +
				`inactive_anon:569656 isolated_anon:32\x0a active_file:115388` + "\n",
			want: []rec{{1, "dumpsys invoked oom-killer: gfp_mask=0x40dc0(GFP_KERNEL|__GFP_COMP|__GFP_ZERO), order=3, oom_score_adj=200"},
				{4, "active_anon:174140 inactive_anon:569656 isolated_anon:32\n active_file:115388"}}},
		"dmesg wrapped at a word by a mail client": {
			in: "[ 4242.000001] Memory cgroup out of memory: Killed process 4242 (stress)\n" +
				"total-vm:8600kB, anon-rss:102400kB, file-rss:0kB, shmem-rss:0kB\n[ 4242.1] next\n",
			want: []rec{{1, "Memory cgroup out of memory: Killed process 4242 (stress) total-vm:8600kB, anon-rss:102400kB, file-rss:0kB, shmem-rss:0kB"}, {3, "next"}}},
		"dmesg cut by an 80-column terminal": {
			in: "[ 4242.000001] Memory cgroup out of memory: Killed process 4242 (stress) total-v\n" +
				"m:8600kB, anon-rss:102400kB\n",
			want: []rec{{1, "Memory cgroup out of memory: Killed process 4242 (stress) total-vm:8600kB, anon-rss:102400kB"}}},
		"short line is not a wrap": {
			in:   "[    1.000000] Call Trace:\nnot a wrap\n",
			want: []rec{{1, "Call Trace:"}, {2, "not a wrap"}}},
		"bare indented paste": {
			in:   " Call Trace:\n  dump_stack+0x63/0x88\n  dump_header+0x67/0x27a\n RIP: 0033:0x4009f0\n\n Task in /leaker killed\n",
			want: []rec{{1, "Call Trace:\ndump_stack+0x63/0x88\ndump_header+0x67/0x27a"}, {4, "RIP: 0033:0x4009f0"}, {6, "Task in /leaker killed"}}},
		"bare lines near 72 columns stay apart": {
			in: " RAX: 000000000000001b RBX: 0000000000000000 RCX: 0000000001ce1000\n" +
				" RDX: 0000000000000000 RSI: 000000007fffffe5 RDI: 0000000000000000\n",
			want: []rec{{1, "RAX: 000000000000001b RBX: 0000000000000000 RCX: 0000000001ce1000"},
				{2, "RDX: 0000000000000000 RSI: 000000007fffffe5 RDI: 0000000000000000"}}},
		"syslog other program and its continuation dropped": {
			in: "Jun 11 20:15:39 hyperv kernel: a\nJun 11 20:15:40 hyperv systemd[1]: long message\n" +
				"                               continued\nJun 11 20:15:41 hyperv kernel: Mem-Info:\nJun 11 20:15:41 hyperv kernel: active_anon:1\n" +
				"                                active_file:2\n",
			want: []rec{{1, "a"}, {4, "Mem-Info:"}, {5, "active_anon:1\nactive_file:2"}}},
		"mixed carriers": {
			in: "[    0.000000] boot\nJan 28 19:58:45 localhost kernel: [  455.498827] oom\n" +
				"Jan 28 19:58:45 localhost kernel: [  455.500000]  [<ffffffff817199c4>] dump_stack+0x45/0x56\n" +
				"4,2,3,-;kmsg\n\n  leaker invoked oom-killer: x\n   dump_stack\n",
			want: []rec{{1, "boot"}, {2, "oom"}, {3, " [<ffffffff817199c4>] dump_stack+0x45/0x56"}, {4, "kmsg"}, {6, "leaker invoked oom-killer: x\ndump_stack"}}},
		"quoted mail with nbsp": {
			in:   "> [ 1.000000] CPU: 7 PID: 12845 Comm: dumpsys Tainted: G\u00a0\u00a0W\n> [ 1.000001] end\n",
			want: []rec{{1, "CPU: 7 PID: 12845 Comm: dumpsys Tainted: G  W"}, {2, "end"}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			recs, _ := decodeAll(t, tc.in)
			var got []rec
			for _, r := range recs {
				got = append(got, rec{r.Line, r.Text})
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestDecoderJournalYear: the journal banner gives the short format's
// dates their year; without it they keep only the stamp.
func TestDecoderJournalYear(t *testing.T) {
	in := "-- Journal begins at Thu 2021-06-10 06:17:06 MST, ends at Fri 2021-06-11 20:34:01 MST. --\n" +
		"Jun 11 20:17:20 hyperv kernel: x\n"
	recs, _ := decodeAll(t, in)
	want := time.Date(2021, 6, 11, 20, 17, 20, 0, time.UTC)
	if len(recs) != 1 || !recs[0].Time.Equal(want) || recs[0].Stamp != "" {
		t.Fatalf("records %+v, want time %v", recs, want)
	}
	recs, _ = decodeAll(t, "Jun 11 20:17:20 hyperv kernel: x\n")
	if len(recs) != 1 || !recs[0].Time.IsZero() || recs[0].Stamp != "Jun 11 20:17:20" {
		t.Fatalf("without a banner: %+v", recs)
	}
}

func TestDecoderStats(t *testing.T) {
	in := "[ 1.0] a\nJan  5 15:19:01 CRON[14500]: x\n" + strings.Repeat("y", maxLine+5) + "\nbare\n{\"MESSAGE\":\"j\",\"_TRANSPORT\":\"kernel\"}\n" +
		"{\"MESSAGE\":\"u\",\"_TRANSPORT\":\"syslog\"}\n"
	recs, d := decodeAll(t, in)
	if len(recs) != 3 {
		t.Fatalf("records %+v", recs)
	}
	s := d.Stats()
	if s.Lines != 6 || s.NonKernel != 2 || s.Skipped != 1 || len(s.LongLines) != 1 || s.LongLines[0].Line != 3 ||
		s.Records[CarrierDmesg] != 1 || s.Records[CarrierBare] != 1 || s.Records[CarrierJournalJSON] != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestDecoderJSON(t *testing.T) {
	in := `{"MESSAGE":"hello","__MONOTONIC_TIMESTAMP":"5000000","__REALTIME_TIMESTAMP":"1795726800000000"}` + "\n" +
		`{"MESSAGE":[119,111,114,108,100],"__MONOTONIC_TIMESTAMP":"6000000"}` + "\n"
	recs, _ := decodeAll(t, in)
	if len(recs) != 2 || recs[0].Text != "hello" || recs[1].Text != "world" || recs[0].Monotonic != 5*time.Second ||
		!recs[0].Time.Equal(time.UnixMicro(1795726800000000)) || recs[0].Carrier != CarrierJournalJSON {
		t.Fatalf("records %+v", recs)
	}
}

// FuzzDecodeLine holds decodeLine to what it promises for any line: texts
// and stamps are cut from the line, never made up.
func FuzzDecodeLine(f *testing.F) {
	for _, s := range []string{
		"[ 5864.708440] x", "[   49.921978][ T6736] x", "<4>[ 1.0] x", "kern  :warn  : [ 1.0] x",
		"[Thu Nov 26 21:00:00 2026] x", "[四 11月 26 21:00:00 2026] x", "Jan  5 15:19:27 kernel: [ 1.0] x",
		"Mon Dec  9 12:04:12 2024 kern.warn kernel: x", "2024-01-05T15:19:27,708440+01:00 h kernel: x",
		"4,1,2,-,caller=T1;x", "> >  x", "-- Boot 1 --", `{"MESSAGE":"x"}`, "[  12.000000 <  0.000123>] x",
		"<999>x", "[ T]", "Jan 32 99:99:99 kernel: x",
	} {
		f.Add(s, 0)
	}
	f.Fuzz(func(t *testing.T, l string, year int) {
		if strings.ContainsAny(l, "\n") {
			return
		}
		var c stampCache
		var d decodedLine
		decodeLine(&d, l, year%3000, &c)
		switch d.kind {
		case lineRecord, lineBare:
			if d.rec.Carrier != CarrierJournalJSON && !strings.Contains(l, d.rec.Text) {
				t.Fatalf("%q: text %q is not from the line", l, d.rec.Text)
			}
			if d.kind == lineBare && (d.rec.Text == "" || d.rec.Carrier != CarrierBare) {
				t.Fatalf("%q: bare %+v", l, d.rec)
			}
		}
		if !strings.Contains(l, d.rec.Stamp) || !strings.Contains(l, d.rec.Caller) {
			t.Fatalf("%q: stamp %q or caller %q not from the line", l, d.rec.Stamp, d.rec.Caller)
		}
		if d.indent < 0 || d.indent > len(l) {
			t.Fatalf("%q: indent %d", l, d.indent)
		}
	})
}

// FuzzDmesgRoundTrip formats a record as each carrier prints it and
// decodes it back.
func FuzzDmesgRoundTrip(f *testing.F) {
	f.Add(uint32(5864), uint32(708440), uint16(6736), uint8(0), "memorymonster invoked oom-killer: x")
	f.Add(uint32(0), uint32(0), uint16(0), uint8(5), " dump_stack+0x45/0x56")
	f.Fuzz(func(t *testing.T, sec, usec uint32, caller uint16, form uint8, text string) {
		if strings.ContainsAny(text, "\n\r") || strings.HasPrefix(text, "[") || strings.Contains(text, "\u00a0") {
			return
		}
		usec %= 1000000
		mono := time.Duration(sec)*time.Second + time.Duration(usec)*time.Microsecond
		ts := fmt.Sprintf("[%5d.%06d]", sec, usec)
		id := fmt.Sprintf("T%d", caller)
		var line string
		wantCaller := ""
		switch form % 6 {
		case 0:
			line = ts + " " + text
		case 1:
			line, wantCaller = ts+fmt.Sprintf("[%6s] ", id)+text, id
		case 2:
			line = "Jan  5 15:19:27 host kernel: " + ts + " " + text
		case 3:
			line = "2024-01-05T15:19:27.708440+01:00 host kernel: " + ts + " " + text
		case 4:
			line = "> " + ts + " " + text
		case 5:
			line = fmt.Sprintf("4,%d,%d,-,caller=%s;", caller, int64(mono/time.Microsecond), id) + text
			wantCaller = id
			if strings.Contains(text, `\x`) {
				return
			}
		}
		if form%6 != 5 && strings.HasPrefix(text, "host kernel: ") {
			return
		}
		var c stampCache
		var d decodedLine
		decodeLine(&d, line, 0, &c)
		if d.kind != lineRecord || d.rec.Monotonic != mono || d.rec.Text != text || d.rec.Caller != wantCaller {
			t.Fatalf("%q: %+v, want mono %v caller %q text %q", line, d.rec, mono, wantCaller, text)
		}
	})
}

// FuzzUnwrap wraps one record as a mail client (at a word, with or
// without a format=flowed space) or a terminal (at 80 columns, inside a
// word) would, and expects the Decoder to put it back together.
func FuzzUnwrap(f *testing.F) {
	f.Add("out of memory killed process 4242 (stress) total_vm=8600kb anon_rss=102400kb file_rss=0kb shmem_rss=0kb uid=0", uint8(72), uint8(0), false)
	f.Add("gfp_mask=0x40dc0(gfp_kernel|gfp_comp|gfp_zero), order=3, oom_score_adj=200", uint8(76), uint8(1), true)
	f.Add("a b c d e f g h i j k l m n o p q r s t u v w x y z a b c d e f g h i j k l m n o p q r s t u v w x y z", uint8(80), uint8(2), false)
	f.Fuzz(func(t *testing.T, words string, width, mode uint8, kmsg bool) {
		text := wordsOnly(words)
		prefix := "[ 4242.000001] "
		if kmsg {
			prefix = "4,1,4242000001,-;"
		}
		var lines []string
		switch mode % 3 {
		case 0, 1: // at a word, flowed (trailing space) or not
			w := 72 + int(width)%7
			lines = wrapWords(prefix+text, w, mode%3 == 1)
		case 2: // a terminal, 80 columns
			lines = cutColumns(prefix+text, 80)
		}
		if len(lines) == 0 {
			return
		}
		recs, _ := decodeAll(t, strings.Join(lines, "\n")+"\n")
		if len(recs) != 1 || recs[0].Text != text {
			t.Fatalf("%q wrapped as %q decoded to %+v", text, lines, recs)
		}
	})
}

// wordsOnly turns s into words of [a-z0-9_,()=] separated by single
// spaces, none starting with a character that marks a line as not text,
// none longer than 30: what a wrapper can wrap.
func wordsOnly(s string) string {
	var words []string
	for _, w := range strings.Fields(s) {
		w = strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == ',', r == '(', r == ')', r == '=':
				return r
			}
			return -1
		}, w)
		w = strings.TrimLeft(w, "(=")
		if len(w) > 30 {
			w = w[:30]
		}
		if w != "" {
			words = append(words, w)
		}
	}
	return strings.Join(words, " ")
}

// wrapWords breaks s before a word that would pass width, as mail
// clients do; flowed keeps the space at the end of the broken line.
func wrapWords(s string, width int, flowed bool) []string {
	var lines []string
	line := ""
	for _, w := range strings.Split(s, " ") {
		switch {
		case line == "":
			line = w
		case len(line)+1+len(w) <= width:
			line += " " + w
		default:
			if flowed {
				line += " "
			}
			lines = append(lines, line)
			line = w
		}
	}
	return append(lines, line)
}

func cutColumns(s string, width int) []string {
	var lines []string
	for len(s) > width {
		lines = append(lines, s[:width])
		s = s[width:]
	}
	return append(lines, s)
}

// FuzzDecoder runs the Decoder over anything: it ends, numbers records in
// order and keeps each within bounds.
func FuzzDecoder(f *testing.F) {
	f.Add("[  1.000000] a\n  b\n<SNIP>\n")
	f.Add("[Thu Nov 26 21:00:00 2026] a\n")
	f.Add("Nov 26 21:00:00.123456 host kernel: a\nNov 26 21:00:00.123456 host cron: b\n   c\n")
	f.Add(`{"MESSAGE":[1,2],"__MONOTONIC_TIMESTAMP":"1"}` + "\n")
	f.Add("4,1,1,-;a \nb\n SUBSYSTEM=x\n")
	f.Add("-- Logs begin at Thu 2021-06-10 06:17:06 MST, end at Fri 2021-06-11 20:34:01 MST. --\nJun 11 20:17:20 h kernel: x\n")
	f.Add("> > [ 1.0] a\n>   b\n\u00a0c\n")
	f.Fuzz(func(t *testing.T, s string) {
		d := NewDecoder(strings.NewReader(s), nil)
		last := 0
		for range 100000 {
			r, err := d.Next()
			if err != nil {
				if st := d.Stats(); st.Lines > strings.Count(s, "\n")+1 {
					t.Fatalf("%d lines read from %d", st.Lines, strings.Count(s, "\n")+1)
				}
				return
			}
			if r.Line <= last || len(r.Text) > maxRecord+4*maxLine {
				t.Fatalf("record on line %d after line %d, %d bytes", r.Line, last, len(r.Text))
			}
			last = r.Line
		}
		t.Fatal("decoder did not end")
	})
}

func TestYearlessTime(t *testing.T) {
	now := time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		stamp string
		want  time.Time
		ok    bool
	}{
		"this year":         {"Jan  2 09:00:00", time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC), true},
		"last year":         {"Dec 31 23:59:59", time.Date(2025, 12, 31, 23, 59, 59, 0, time.UTC), true},
		"fraction":          {"Jan  1 00:00:00.5", time.Date(2026, 1, 1, 0, 0, 0, 5e8, time.UTC), true},
		"within a day":      {"Jan  3 09:00:00", time.Date(2026, 1, 3, 9, 0, 0, 0, time.UTC), true},
		"dmesg -T locale":   {"Mo Mär  3 04:12:09 2025", time.Time{}, false},
		"trailing text":     {"Jan  2 09:00:00 host", time.Time{}, false},
		"not a date at all": {"", time.Time{}, false},
	}
	for name, tc := range tests {
		got, ok := YearlessTime(tc.stamp, now, time.UTC)
		if ok != tc.ok || !got.Equal(tc.want) {
			t.Errorf("%s: YearlessTime(%q) = %v, %v; want %v, %v", name, tc.stamp, got, ok, tc.want, tc.ok)
		}
	}
}

// KeepPrograms: other programs' syslog and journal messages come out as
// records naming their program, continuation lines joined, the kernel's
// as before.
func TestKeepPrograms(t *testing.T) {
	in := "Jun 11 20:15:39 node kernel: a\n" +
		"Jun 11 20:15:40 node earlyoom[812]: sending SIGTERM to process 42 uid 0 \"x\": badness 900, VmRSS 10 MiB\n" +
		"                                 continued\n" +
		`{"MESSAGE":"Killed /system.slice/x.service due to memory used","_TRANSPORT":"journal","SYSLOG_IDENTIFIER":"systemd-oomd","__REALTIME_TIMESTAMP":"1700000000000000"}` + "\n" +
		`{"MESSAGE":"Out of memory: Killed process 1","_TRANSPORT":"kernel","__REALTIME_TIMESTAMP":"1700000001000000"}` + "\n" +
		`{"MESSAGE":"no identifier","_TRANSPORT":"stdout"}` + "\n"
	want := []struct{ prog, text string }{
		{"", "a"},
		{"earlyoom", "sending SIGTERM to process 42 uid 0 \"x\": badness 900, VmRSS 10 MiB\ncontinued"},
		{"systemd-oomd", "Killed /system.slice/x.service due to memory used"},
		{"", "Out of memory: Killed process 1"},
		{"?", "no identifier"},
	}
	for _, keep := range []bool{false, true} {
		d := NewDecoder(strings.NewReader(in), time.UTC)
		if keep {
			d.KeepPrograms()
		}
		var got []Record
		for {
			r, err := d.Next()
			if err != nil {
				break
			}
			got = append(got, r)
		}
		n := 0
		for _, w := range want {
			if w.prog != "" && !keep {
				continue
			}
			if n >= len(got) || got[n].Program != w.prog || got[n].Text != w.text {
				t.Fatalf("keep %v: record %d = %+v, want program %q text %q", keep, n, got, w.prog, w.text)
			}
			n++
		}
		if n != len(got) {
			t.Errorf("keep %v: %d records, want %d: %+v", keep, len(got), n, got)
		}
		if st := d.Stats(); st.Records[CarrierSyslog] != 1 || st.Records[CarrierJournalJSON] != 1 {
			t.Errorf("keep %v: kernel records by carrier %v, want 1 syslog and 1 journal", keep, st.Records)
		}
	}
}
