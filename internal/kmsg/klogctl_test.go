package kmsg

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeKlog is a kernel log buffer as syslog(2) READ_ALL serves it: the
// newest whole lines that fit the caller's buffer.
type fakeKlog struct {
	lines []string
	size  int
	reads []int
}

func (f *fakeKlog) read(b []byte) (int, error) {
	if len(b) == 0 {
		return f.size, nil
	}
	f.reads = append(f.reads, len(b))
	var out []string
	n := 0
	for i := len(f.lines) - 1; i >= 0; i-- {
		if n+len(f.lines[i])+1 > len(b) {
			break
		}
		n += len(f.lines[i]) + 1
		out = append([]string{f.lines[i]}, out...)
	}
	s := strings.Join(out, "\n")
	if len(out) > 0 {
		s += "\n"
	}
	return copy(b, s), nil
}

func drain(t *testing.T, s *Syslog) []string {
	t.Helper()
	var got []string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		r, err := s.Next(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.Text)
	}
}

func TestSyslogFollowsByTimestamp(t *testing.T) {
	f := &fakeKlog{size: 1 << 20, lines: []string{
		"<6>[    0.000000] Linux version 6.1",
		"<4>[   12.000001] old line",
	}}
	s, err := openSyslog(true, f.read)
	if err != nil {
		t.Fatal(err)
	}
	if got := drain(t, s); len(got) != 0 {
		t.Fatalf("from the end: got %q before anything new was logged", got)
	}
	// Two records in the same microsecond, then one that has the stamp
	// of the last returned one: only the ones not returned yet come.
	f.lines = append(f.lines, "<4>[   13.000000] python3 invoked oom-killer", "<6>[   13.000000] [    T42] same stamp", "<3>[   13.500000] Memory cgroup out of memory: Killed process 1 (a)")
	got := drain(t, s)
	want := []string{"python3 invoked oom-killer", "same stamp", "Memory cgroup out of memory: Killed process 1 (a)"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	f.lines = append(f.lines, "<6>[   13.500000] a second line in that microsecond")
	if got := drain(t, s); len(got) != 1 || got[0] != "a second line in that microsecond" {
		t.Fatalf("same stamp as the last: got %q", got)
	}
	if got := drain(t, s); len(got) != 0 {
		t.Fatalf("nothing new: got %q", got)
	}
}

func TestSyslogReadsMoreWhenBehind(t *testing.T) {
	f := &fakeKlog{size: 1 << 20, lines: []string{"<6>[    1.000000] start"}}
	s, err := openSyslog(true, f.read)
	if err != nil {
		t.Fatal(err)
	}
	// More new text than the first read holds: the reader widens its
	// read until it reaches the last record it returned.
	for i := range 2000 {
		f.lines = append(f.lines, "<6>["+padStamp(2+i)+"] line "+strings.Repeat("x", 20))
	}
	if got := drain(t, s); len(got) != 2000 {
		t.Fatalf("got %d records, want 2000", len(got))
	}
	if s.Lost() != 0 {
		t.Fatalf("lost %d", s.Lost())
	}
	// A log that rolled over entirely: counted as lost.
	f.lines = nil
	for i := range 10 {
		f.lines = append(f.lines, "<6>["+padStamp(10000+i)+"] new")
	}
	f.size = 1 << 10
	if got := drain(t, s); len(got) != 10 || s.Lost() != 1 {
		t.Fatalf("rolled over: got %d records, lost %d", len(got), s.Lost())
	}
}

func padStamp(sec int) string {
	s := strings.Repeat(" ", 5) + itoa(sec) + ".000000"
	return s[len(s)-12:]
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestSyslogNeedsTimestamps(t *testing.T) {
	f := &fakeKlog{size: 4096, lines: []string{"<6>Linux version 6.1", "<4>no stamps here"}}
	if _, err := openSyslog(true, f.read); err == nil || !strings.Contains(err.Error(), "printk.time") {
		t.Fatalf("got %v, want an error naming printk.time", err)
	}
	denied := func([]byte) (int, error) { return 0, unix.EPERM }
	if _, err := openSyslog(true, denied); !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), "CAP_SYSLOG") {
		t.Fatalf("denied: got %v", err)
	}
}

func TestParseSyslogLine(t *testing.T) {
	for line, want := range map[string]Record{
		"<6>[    0.123456] hello":         {Priority: 6, Monotonic: 123456 * time.Microsecond, Text: "hello"},
		"<30>[    1.000000] systemd msg":  {Priority: 6, Facility: 3, Monotonic: time.Second, Text: "systemd msg"},
		"<4>[   2.000001][  C1] cpu line": {Priority: 4, Monotonic: 2*time.Second + time.Microsecond, Text: "cpu line"},
		"[    3.000000] no prio":          {Monotonic: 3 * time.Second, Text: "no prio"},
		"<4>[   2.000001] [ x] bracket":   {Priority: 4, Monotonic: 2*time.Second + time.Microsecond, Text: "[ x] bracket"},
	} {
		got, ok := parseSyslogLine(line)
		if !ok || got.Priority != want.Priority || got.Facility != want.Facility || got.Monotonic != want.Monotonic || got.Text != want.Text {
			t.Errorf("%q: got %+v %v, want %+v", line, got, ok, want)
		}
	}
	for _, line := range []string{"", "<6>", "<6>no stamp", "<x>[ 1.000000] y", "plain"} {
		if r, ok := parseSyslogLine(line); ok && line != "<x>[ 1.000000] y" {
			t.Errorf("%q: parsed as %+v", line, r)
		}
	}
}

func FuzzParseSyslogLine(f *testing.F) {
	f.Add("<6>[    0.123456] hello")
	f.Add("<4>[   2.000001][  C1] cpu line")
	f.Add("<99999999999>[1.000000] x")
	f.Fuzz(func(t *testing.T, line string) {
		r, ok := parseSyslogLine(line)
		if ok && (r.Monotonic < 0 || !strings.Contains(line, r.Text)) {
			t.Fatalf("%q: %+v", line, r)
		}
	})
}

// TestLiveSyslog reads this machine's kernel log through syslog(2).
func TestLiveSyslog(t *testing.T) {
	s, err := OpenSyslog(false)
	if errors.Is(err, unix.EPERM) {
		t.Skipf("no CAP_SYSLOG here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	got := drain(t, s)
	if len(got) == 0 {
		t.Fatal("no records in the kernel log")
	}
	s2, err := OpenSyslog(true)
	if err != nil {
		t.Fatal(err)
	}
	// From the end, only what the kernel logs from now on comes; on a
	// shared machine that may be something, but not the whole buffer.
	if again := drain(t, s2); len(again) >= len(got) {
		t.Fatalf("from the end: %d records, the whole buffer has %d", len(again), len(got))
	}
}
