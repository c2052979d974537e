package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"podwarden/internal/syncbuf"
)

func TestEventsFile(t *testing.T) {
	tests := map[string]struct {
		file     string
		output   string
		wantKind string
		want     string
	}{
		"seed memcg json": {file: "../../internal/oomreport/testdata/seed-6.1-memcg-docker.log", output: "json", wantKind: "cgroup", want: `"comm":"tail"`},
		"group kill text": {file: "../../internal/oomreport/testdata/synth-6.8-v2-group-kill.log", output: "text", want: "group kill took 2 bystanders"},
		"kmsg dump json":  {file: "../../internal/oomreport/testdata/host-6.18.44-fc-v669-v1-memcg.kmsg", output: "json", wantKind: "cgroup", want: `"oom_memcg":"/podwarden-fixture"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			s := Streams{In: strings.NewReader(""), Out: &out, ErrOut: &out}
			cmd := newEventsCmd(s, nil)
			cmd.SetArgs([]string{"--file", tc.file, "-o", tc.output})
			cmd.SetOut(&out)
			if err := cmd.ExecuteContext(context.Background()); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Errorf("output lacks %q:\n%s", tc.want, out.String())
			}
			if tc.wantKind != "" {
				var m map[string]any
				if err := json.Unmarshal([]byte(strings.SplitN(out.String(), "\n", 2)[0]), &m); err != nil {
					t.Fatal(err)
				}
				for _, k := range []string{"apiVersion", "kind", "monotonic_s", "scope", "constraint", "oom_memcg", "task_memcg", "invoker", "victims", "diagnosis", "incomplete"} {
					if _, ok := m[k]; !ok {
						t.Errorf("key %q missing", k)
					}
				}
				// Unknown is absent: no memory.oom.group line, no wall clock.
				for _, k := range []string{"time", "group_kill_cgroup"} {
					if v, ok := m[k]; ok {
						t.Errorf("key %q = %v, want it absent", k, v)
					}
				}
				if m["apiVersion"] != "podwarden.dev/v1" || m["kind"] != "OOMEvent" || m["scope"] != tc.wantKind {
					t.Errorf("apiVersion %v kind %v scope %v", m["apiVersion"], m["kind"], m["scope"])
				}
			}
		})
	}
}

// TestEventsFollow feeds a fake /dev/kmsg (a FIFO) while the command runs
// and expects the report to come out after the idle timeout.
func TestEventsFollow(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "kmsg")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	raw, err := os.ReadFile("../../internal/oomreport/testdata/host-6.18.44-fc-v669-v1-memcg.kmsg")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- runEvents(ctx, Streams{Out: &out, ErrOut: &out}, &eventsFlags{follow: true, output: "json", kmsgPath: p, idle: 300 * time.Millisecond})
	}()
	w, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// One record per write, as /dev/kmsg hands them out.
	for _, rec := range strings.SplitAfter(string(raw), "\n") {
		if rec != "" {
			_, _ = w.WriteString(rec)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(out.String(), "podwarden-fixture") {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	if !strings.Contains(out.String(), `"scope":"cgroup"`) {
		t.Fatalf("no report while following: %q", out.String())
	}
}

// Events name the pod the way ps and victims do: namespace/name from the
// kubelet's log directories, in the text, its diagnosis and the JSON, the
// UID when no directory names it; a container id is crictl's 13
// characters in text, whole in JSON.
func TestEventsPodNames(t *testing.T) {
	const file = "../../internal/oomreport/testdata/synth-4.19-v1-memcg.log"
	const uid = "6f1c2b4a-1d2e-4f5a-9b8c-7d6e5f4a3b2c"
	pods := t.TempDir()
	if err := os.Mkdir(filepath.Join(pods, "ml_train-7_"+uid), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		dir, output string
		want, not   []string
	}{
		"named text": {dir: pods, output: "text", want: []string{
			"(pod ml/train-7 container 4a1b2c3d4e5f6). Killed stress (pid 4242, anon 99.0 MiB, adj 998, pod ml/train-7).",
			"Diagnosis: container 4a1b2c3d4e5f6 of pod ml/train-7 hit its memory limit"}, not: []string{"pod " + uid}},
		"named json": {dir: pods, output: "json", want: []string{
			`"pod_uid":"` + uid + `","pod_namespace":"ml","pod_name":"train-7","container_id":"4a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"`,
			`"summary":"container 4a1b2c3d4e5f6 of pod ml/train-7 hit its memory limit`}},
		"unnamed text": {dir: "", output: "text", want: []string{"(pod " + uid + " container 4a1b2c3d4e5f6)", "of pod " + uid + " hit"}},
		"unnamed json": {dir: "", output: "json", want: []string{`"pod_uid":"` + uid + `","container_id":`}, not: []string{"pod_name", "pod_namespace"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, errOut, code := runForTest(t, "events", "--file", file, "--pod-log-dir", tc.dir, "-o", tc.output)
			if code != 0 {
				t.Fatalf("code %d, stderr %q", code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("want %q in:\n%s", w, out)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(out, n) {
					t.Errorf("want no %q in:\n%s", n, out)
				}
			}
		})
	}
}
