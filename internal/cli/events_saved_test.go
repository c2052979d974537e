package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const fixtures = "../../internal/oomreport/testdata/"

// writeLog writes s to a file in a test directory and returns its path.
func writeLog(t *testing.T, name, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEventsNothingFound is issue 14's `events --file /etc/hostname`: a
// log with no OOM in it must say so, not print nothing; so must reading
// /dev/kmsg (here a saved copy) without --follow.
func TestEventsNothingFound(t *testing.T) {
	host := writeLog(t, "hostname", "ip-10-0-1-17\n")
	dev := writeLog(t, "kmsg", "6,1,1000,-;usb 1-1: new high-speed USB device\n6,2,2000,-;eth0: link up\n")
	for _, tc := range []struct{ args, want string }{
		{"--file " + host, "podwarden: no OOM reports in " + host + " (1 line read)\n"},
		{"--kmsg-path " + dev, "podwarden: no OOM reports in " + dev + " (2 records read)\n"},
	} {
		out, errOut, code := runForTest(t, append([]string{"events"}, strings.Fields(tc.args)...)...)
		if code != 0 || out != "" || errOut != tc.want {
			t.Errorf("events %s: code %d, stdout %q, stderr %q; want 0, nothing, %q", tc.args, code, out, errOut, tc.want)
		}
	}
	_, errOut, code := runForTest(t, "events", "--file", t.TempDir())
	if code != 1 || !strings.Contains(errOut, "is a directory") {
		t.Fatalf("a directory: code %d, stderr %q", code, errOut)
	}
	_, errOut, code = runForTest(t, "events", "--file", filepath.Join(t.TempDir(), "missing.log"))
	if code != 1 || !strings.Contains(errOut, "missing.log") {
		t.Fatalf("a missing file: code %d, stderr %q", code, errOut)
	}
}

// TestEventsSince is issue 14's `events --since 1m` on a dmesg file: it is
// applied where the log has wall-clock time, and said on stderr where it
// cannot be.
func TestEventsSince(t *testing.T) {
	now := time.Date(2025, 3, 3, 4, 12, 39, 0, time.Local) // 30 s after the fixtures' OOM
	tests := map[string]struct {
		file     string
		since    time.Duration
		reports  int
		stderrRe string
	}{
		"dmesg: time since boot only": {file: "carrier-mail-wrapped.log", since: time.Minute, reports: 1,
			stderrRe: `--since 1m0s not applied to 1 report in .*carrier-mail-wrapped.log: the log gives only time since boot`},
		"dmesg -T, recent":        {file: "carrier-dmesg-T.log", since: time.Minute, reports: 1, stderrRe: `^$`},
		"dmesg -T, too old":       {file: "carrier-dmesg-T.log", since: 10 * time.Second, stderrRe: `no OOM reports in .* newer than 10s \(1 older; 20 lines read\)`},
		"dmesg -T in German":      {file: "carrier-dmesg-T-locale.log", since: time.Minute, reports: 1, stderrRe: `not applied to 1 report`},
		"syslog without a year":   {file: "carrier-syslog-host-ts.log", since: time.Minute, reports: 1, stderrRe: `dates 1 report without a year; each was read as the latest such date before now`},
		"syslog, too old":         {file: "carrier-syslog-no-ts.log", since: 10 * time.Second, stderrRe: `newer than 10s \(1 older`},
		"journal with its banner": {file: "carrier-journal-short.log", since: time.Minute, reports: 1, stderrRe: `^$`},
		"rfc 3339":                {file: "carrier-syslog-rfc3339.log", since: time.Hour, reports: 0, stderrRe: `newer than 1h0m0s`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			f := &eventsFlags{file: fixtures + tc.file, since: tc.since, output: "json", now: now}
			if strings.Contains(tc.file, "rfc3339") {
				f.now = time.Date(2025, 3, 3, 6, 0, 0, 0, time.UTC) // the stamps carry their zone
			}
			err := runEvents(context.Background(), Streams{Out: &out, ErrOut: &errOut}, f)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(out.String(), "\n"); n != tc.reports {
				t.Errorf("%d reports, want %d", n, tc.reports)
			}
			if !regexp.MustCompile(tc.stderrRe).MatchString(errOut.String()) {
				t.Errorf("stderr %q does not match %q", errOut.String(), tc.stderrRe)
			}
		})
	}
}

// TestEventsUnassembled: lines that look like OOM reports but go into
// none are listed with their line numbers, and the exit status says so.
func TestEventsUnassembled(t *testing.T) {
	out, errOut, code := runForTest(t, "events", "--file", fixtures+"quirk-unassembled.log", "-o", "json")
	// The paste that ends inside a call trace is an incomplete report of
	// its invoker, not a stray: two reports, two strays.
	if code != eventsExitUnassembled || strings.Count(out, "\n") != 2 {
		t.Fatalf("code %d, stdout %q", code, out)
	}
	if !strings.Contains(out, `"victims":[]`) || !strings.Contains(out, `"missing":["kill line","oom-kill summary"]`) {
		t.Errorf("the invoker-only paste is not an incomplete report without victims:\n%s", out)
	}
	for _, want := range []string{
		"quirk-unassembled.log: 2 lines looked like part of an OOM report but went into none:",
		"line 21: oom_reaper reaped pid 31290 (cron), which no kill line in the input names",
		`line 23: the OOM killer chose pid 20418 (java), but the "Killed process" line is not in the input`,
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}

// TestEventsHugeLine: a 10 MB line is skipped with a warning, and what
// follows it is still read.
func TestEventsHugeLine(t *testing.T) {
	report, err := os.ReadFile(fixtures + "carrier-callerid.log")
	if err != nil {
		t.Fatal(err)
	}
	p := writeLog(t, "huge.log", "[    1.000000] boot\n"+strings.Repeat("\x00garbage", 10<<20/8)+"\n"+string(report))
	out, errOut, code := runForTest(t, "events", "--file", p, "-o", "json")
	if code != 0 || !strings.Contains(out, `"comm":"java"`) {
		t.Fatalf("code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if !strings.Contains(errOut, "huge.log line 2: skipped a line of 10485760 bytes") {
		t.Errorf("stderr %q", errOut)
	}
}

// TestEventsRepeated: the same kill in dmesg and in the journal is printed
// once, and that is said.
func TestEventsRepeated(t *testing.T) {
	out, errOut, code := runForTest(t, "events", "--file", fixtures+"quirk-dedupe-dmesg-journal.log", "-o", "json")
	if code != 0 || strings.Count(out, "\n") != 1 {
		t.Fatalf("code %d, stdout %q", code, out)
	}
	if !strings.Contains(errOut, "quirk-dedupe-dmesg-journal.log line 22: the same kill as the report at line 1") {
		t.Errorf("stderr %q", errOut)
	}
}

// TestEventsText: the paragraph a person reads, sizes as `victims` prints
// them.
func TestEventsText(t *testing.T) {
	out, _, code := runForTest(t, "events", "--file", fixtures+"carrier-syslog-host-ts.log")
	want := "Mar  3 04:12:09 line 3: node OOM invoked by stress-ng-vm (pid 31337, adj 0, 0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP) order 0). " +
		"Killed stress-ng-vm (pid 31337, anon 7.5 GiB, adj 0, /user.slice/user-1000.slice/session-3.scope). " +
		"Diagnosis: the node ran out of memory; killed stress-ng-vm (pid 31337, 7.5 GiB anon, adj 0).\n\n"
	if code != 0 || out != want {
		t.Fatalf("code %d\n got %q\nwant %q", code, out, want)
	}
	out, _, _ = runForTest(t, "events", "--file", fixtures+"quirk-summary-lines.log")
	if !strings.Contains(out, "Killed python3 (pid 48211, pod 7c9e6679-7425-40de-944b-e07fc1f90ae7). ") ||
		!strings.Contains(out, "Incomplete: missing invoker, kill line.") {
		t.Errorf("summary-only reports: %q", out)
	}
}

// TestEventsHelp: --help says -o json is JSON Lines and names the exit
// codes.
func TestEventsHelp(t *testing.T) {
	out, _, code := runForTest(t, "events", "--help")
	for _, want := range []string{"JSON Lines", "Exit status: 0", "no OOM reports in FILE"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("events --help lacks %q", want)
		}
	}
	// Every line of -o json is one JSON object.
	out, _, _ = runForTest(t, "events", "--file", fixtures+"carrier-mixed.log", "-o", "json")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
	}
	if len(lines) != 3 {
		t.Errorf("%d JSON lines, want 3", len(lines))
	}
}
