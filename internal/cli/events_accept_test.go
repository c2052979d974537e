package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// realLogsDir finds the public OOM logs kept beside the repository (never
// in it): $PODWARDEN_SHARED/fixtures/real-oom-logs, or ../shared from the
// repository root.
func realLogsDir(t *testing.T) string {
	t.Helper()
	shared := os.Getenv("PODWARDEN_SHARED")
	if shared == "" {
		shared = filepath.Join("..", "..", "..", "shared")
	}
	dir := filepath.Join(shared, "fixtures", "real-oom-logs")
	if _, err := os.Stat(filepath.Join(dir, "expect.json")); err != nil {
		t.Skipf("real OOM logs not found (%v): set PODWARDEN_SHARED to the directory holding fixtures/real-oom-logs", err)
	}
	return dir
}

type expectedReport struct {
	Kind    string `json:"kind"`
	Victims []struct {
		PID  int    `json:"pid"`
		Comm string `json:"comm"`
	} `json:"victims"`
	PodUID      *string `json:"pod_uid"`
	ContainerID *string `json:"container_id"`
	OOMCgroup   string  `json:"oom_cgroup"`
	Optional    bool    `json:"optional"`
}

// TestEventsRealLogs is issue 13's acceptance: on real kernel OOM reports
// as people published them (mail archives, bug trackers, blogs, peer
// projects' test data; every carrier and quirk of SOURCES.md),
// `podwarden events -o json` gives every non-optional report in
// expect.json right and nothing else.
func TestEventsRealLogs(t *testing.T) {
	dir := realLogsDir(t)
	b, err := os.ReadFile(filepath.Join(dir, "expect.json"))
	if err != nil {
		t.Fatal(err)
	}
	var files []struct {
		File    string           `json:"file"`
		Reports []expectedReport `json:"reports"`
	}
	if err := json.Unmarshal(b, &files); err != nil {
		t.Fatalf("expect.json: %v", err)
	}
	if len(files) == 0 {
		t.Fatal("expect.json lists no files")
	}
	for _, f := range files {
		t.Run(f.File, func(t *testing.T) {
			out, errOut, code := runForTest(t, "events", "--file", filepath.Join(dir, f.File), "-o", "json")
			if code != 0 && code != eventsExitUnassembled {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if errOut != "" {
				t.Logf("stderr:\n%s", errOut)
			}
			var got []gotReport
			for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
				if l == "" {
					continue
				}
				var m gotReport
				if err := json.Unmarshal([]byte(l), &m); err != nil {
					t.Fatalf("output line %q: %v", l, err)
				}
				got = append(got, m)
			}
			i := 0
			for _, want := range f.Reports {
				if i < len(got) && matchReport(got[i], want) == "" {
					i++
					continue
				}
				if want.Optional {
					continue
				}
				if i >= len(got) {
					t.Fatalf("report %+v missing (got %d reports)", want, len(got))
				}
				t.Fatalf("report %d: %s", i, matchReport(got[i], want))
			}
			if i < len(got) {
				t.Fatalf("%d extra reports, the first at line %d", len(got)-i, got[i].Line)
			}
		})
	}
}

// gotReport is what the test reads of a line of `events -o json`.
type gotReport struct {
	Line    int    `json:"line"`
	Kind    string `json:"scope"`
	Victims []struct {
		PID  int    `json:"pid"`
		Comm string `json:"comm"`
	} `json:"victims"`
	PodUID      string `json:"pod_uid"`
	ContainerID string `json:"container_id"`
	OOMMemcg    string `json:"oom_memcg"`
}

// matchReport says how got differs from want, "" when it does not.
func matchReport(got gotReport, want expectedReport) string {
	if got.Kind != want.Kind {
		return fmt.Sprintf("line %d: kind %s, want %s", got.Line, got.Kind, want.Kind)
	}
	var gv, wv []string
	for _, v := range got.Victims {
		gv = append(gv, fmt.Sprintf("%d %s", v.PID, v.Comm))
	}
	for _, v := range want.Victims {
		wv = append(wv, fmt.Sprintf("%d %s", v.PID, v.Comm))
	}
	if strings.Join(gv, ", ") != strings.Join(wv, ", ") {
		return fmt.Sprintf("line %d: victims %q, want %q", got.Line, gv, wv)
	}
	for _, c := range []struct {
		key       string
		got, want string
	}{{"pod_uid", got.PodUID, deref(want.PodUID)}, {"container_id", got.ContainerID, deref(want.ContainerID)}} {
		if c.got != c.want {
			return fmt.Sprintf("line %d: %s %q, want %q", got.Line, c.key, c.got, c.want)
		}
	}
	if want.OOMCgroup != "" && got.OOMMemcg != want.OOMCgroup {
		return fmt.Sprintf("line %d: oom_memcg %q, want %q", got.Line, got.OOMMemcg, want.OOMCgroup)
	}
	return ""
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
