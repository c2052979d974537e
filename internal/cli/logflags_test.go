package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// The agent's log lines name processes and pods (kubectl logs puts them
// on a terminal): the text handler quotes a hostile name with escapes, the
// JSON one carries the true string with C1 and bidi marks \u-escaped.
func TestLogLinesEscapeHostileNames(t *testing.T) {
	const comm = "\x1b[2J\u202eEVIL\u009b"
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := (&LogFlags{Format: format, Level: "info"}).New(&buf)
			if err != nil {
				t.Fatal(err)
			}
			log.Info("protected", "comm", comm, "pod", "hub/"+comm)
			out := buf.String()
			if bad := rawControl(strings.TrimSuffix(out, "\n")); bad != "" {
				t.Fatalf("raw control bytes in the log line: %s", bad)
			}
			if format == "text" {
				if !strings.Contains(out, `comm="\x1b[2J\u202eEVIL\u009b"`) {
					t.Errorf("text line: %s", out)
				}
				return
			}
			var rec map[string]string
			if err := json.Unmarshal([]byte(out), &rec); err != nil || rec["comm"] != comm || rec["pod"] != "hub/"+comm {
				t.Errorf("json line %s (%v): want the true comm", out, err)
			}
		})
	}
}
