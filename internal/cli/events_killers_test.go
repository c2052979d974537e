package cli

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const killerFixtures = "../../internal/oomreport/testdata/"

// Every killer of a node, from its own log, as the user reads it: one
// event per kill naming the killer, the pod by name where the node knows
// it.
func TestEventsKillers(t *testing.T) {
	pods := t.TempDir()
	for _, d := range []string{"ml_train-7_6f1c2b4a-1d2e-4f5a-9b8c-7d6e5f4a3b2c", "web_frontend-0_0b7a4d2e-61c5-4f3a-8e9d-2c4b6a8f1e3d"} {
		if err := os.Mkdir(filepath.Join(pods, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := map[string]struct {
		file string
		want []string
	}{
		"earlyoom": {"killer-earlyoom.log", []string{
			"2026-12-07T04:12:40Z line 8: earlyoom kill. Killed java (pid 31337, rss 12.5 GiB). Diagnosis: earlyoom sent SIGTERM to java",
			`line 13: earlyoom kill. Killed my "q": app (pid 4711, rss 8.9 GiB).`}},
		"systemd-oomd": {"killer-systemd-oomd.log", []string{
			"line 4: systemd-oomd kill in /user.slice/user-1000.slice/user@1000.service. Diagnosis: systemd-oomd killed every process in /user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-firefox-4410.scope due to memory pressure",
			"line 6: systemd-oomd kill (pod web/frontend-0 container 3c5d7e9f1a2b4). Diagnosis: systemd-oomd killed every process in /kubepods.slice/",
			"(pod web/frontend-0) due to memory used (16154615808)"}},
		"kubelet": {"killer-kubelet-eviction.log", []string{
			"2026-12-07T04:22:25Z line 4: kubelet kill (pod ml/train-7). Diagnosis: the kubelet evicted pod ml/train-7: The node was low on resource: memory.",
			"line 8: kubelet kill (pod web/frontend-5d9c7). Diagnosis: the kubelet evicted pod web/frontend-5d9c7: the node was low on memory."}},
		"podwarden": {"killer-podwarden.log", []string{
			"line 4: podwarden kill in /kubepods.slice/",
			"(pod ml/train-7 container 4a1b2c3d4e5f6). Killed python (pid 52001, rss 3.6 GiB, pod ml/train-7). Diagnosis: podwarden ended python",
			"line 5: podwarden kill (pod hub/jupyter-alice container 2c6ca22c5968c)."}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, errOut, code := runForTest(t, "events", "--file", killerFixtures+tc.file, "--pod-log-dir", pods)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("want %q in:\n%s", w, out)
				}
			}
			if strings.Contains(errOut, "no OOM reports") {
				t.Errorf("stderr: %s", errOut)
			}
		})
	}
}

// --journal runs journalctl -o json for the kernel's and the killers'
// messages. This container has no journald, so a script stands in for
// journalctl here, printing a journal export (the kubelet fixture) and
// keeping the arguments it was given; TestEventsRealJournalctl runs the
// real one.
func TestEventsJournal(t *testing.T) {
	dir := t.TempDir()
	argsFile := filepath.Join(dir, "args")
	fake := filepath.Join(dir, "journalctl")
	fixture, err := filepath.Abs(killerFixtures + "killer-kubelet-eviction.log")
	if err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + argsFile + "\ncat " + fixture + "\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	for _, output := range []string{"text", "json"} {
		var out, errOut bytes.Buffer
		f := &eventsFlags{journal: true, journalctl: fake, output: output, since: 24 * time.Hour, now: now}
		if err := runEvents(context.Background(), Streams{Out: &out, ErrOut: &errOut}, f); err != nil {
			t.Fatalf("-o %s: %v (%s)", output, err, errOut.String())
		}
		want := "the kubelet evicted pod ml/train-7"
		if output == "json" {
			want = `"kind":"OOMEvent","killer":"kubelet","time":"2026-12-07T04:22:25.1003Z"`
		}
		if !strings.Contains(out.String(), want) || strings.Count(out.String(), "kubelet evicted") != 2 {
			t.Errorf("-o %s: want %q and two evictions in:\n%s\nstderr: %s", output, want, out.String(), errOut.String())
		}
	}
	args, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"-o\njson\n", "--since\n" + now.Add(-24*time.Hour).Local().Format("2006-01-02 15:04:05") + "\n",
		"_TRANSPORT=kernel\n+\n_SYSTEMD_UNIT=kubelet.service\n+\n_SYSTEMD_UNIT=systemd-oomd.service\n", "SYSLOG_IDENTIFIER=podwarden-agent\n"} {
		if !strings.Contains(string(args), a) {
			t.Errorf("journalctl args lack %q:\n%s", a, args)
		}
	}
}

// A node without journalctl, or a journalctl that fails, is an error
// naming it.
func TestEventsJournalErrors(t *testing.T) {
	dir := t.TempDir()
	failing := filepath.Join(dir, "journalctl")
	if err := os.WriteFile(failing, []byte("#!/bin/sh\necho 'Failed to open journal: Permission denied' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for prog, want := range map[string]string{
		filepath.Join(dir, "nope", "journalctl"): "--journal runs journalctl -o json: exec: ",
		failing:                                  "Failed to open journal: Permission denied",
	} {
		var out, errOut bytes.Buffer
		err := runEvents(context.Background(), Streams{Out: &out, ErrOut: &errOut}, &eventsFlags{journal: true, journalctl: prog, output: "text"})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "journalctl") {
			t.Errorf("%s: err %v, want %q", prog, err, want)
		}
	}
	_, errOut, code := runForTest(t, "events", "--journal", "--kmsg")
	if code != 1 || !strings.Contains(errOut, "exclusive") {
		t.Errorf("--journal --kmsg: exit %d, %s", code, errOut)
	}
	_, errOut, code = runForTest(t, "events", "--journal", "--follow")
	if code != 1 || !strings.Contains(errOut, "--follow works with --kmsg only") {
		t.Errorf("--journal --follow: exit %d, %s", code, errOut)
	}
}

// The real journalctl, where there is one: whatever the journal holds,
// events reads it without error.
func TestEventsRealJournalctl(t *testing.T) {
	if _, err := exec.LookPath("journalctl"); err != nil {
		t.Skip("no journalctl on this machine")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var errOut bytes.Buffer
	w := bufio.NewWriter(&bytes.Buffer{})
	f := &eventsFlags{journal: true, output: "json", since: time.Hour, now: time.Now()}
	if err := eventsFromJournal(ctx, &errOut, w, f); err != nil {
		t.Fatalf("%v (%s)", err, errOut.String())
	}
	t.Logf("stderr: %s", errOut.String())
}

// A pod names its process, and writes its cgroup-visible strings, as it
// likes: what other killers logged of them is escaped in text, true in
// JSON.
func TestEventsKillersHostile(t *testing.T) {
	const evil = `\u001b[2J\u202eEVIL\u009b`
	log := `{"MESSAGE":"sending SIGKILL to process 5 uid 0 \"` + evil + `\": badness 9, VmRSS 1 MiB","_TRANSPORT":"journal","SYSLOG_IDENTIFIER":"earlyoom","__REALTIME_TIMESTAMP":"1796617345000000"}` + "\n" +
		`{"MESSAGE":"time=2026-12-07T04:26:42Z level=WARN msg=\"ended process under memory pressure\" pod=a/b cgroup=/x comm=\"` + evil + `\" pid=6 rss_bytes=1 signals=SIGKILL why=\"` + evil + `\"","_TRANSPORT":"stdout","SYSLOG_IDENTIFIER":"podwarden-agent"}` + "\n"
	file := filepath.Join(t.TempDir(), "journal.json")
	if err := os.WriteFile(file, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runForTest(t, "events", "--file", file)
	if code != 0 || strings.Count(out, `\x1b[2J\xe2\x80\xaeEVIL\xc2\x9b`) != 5 || rawControl(out) != "" {
		t.Errorf("exit %d, raw bytes %s, want 5 escaped names in:\n%s\n%s", code, rawControl(out), out, errOut)
	}
	js, _, _ := runForTest(t, "events", "--file", file, "-o", "json")
	if strings.Count(js, `"\u001b[2J\u202eEVIL\u009b"`) != 3 || rawControl(js) != "" {
		t.Errorf("json: want the true name as escapes:\n%s", js)
	}
}
