package oomreport

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"podwarden/internal/kmsg"
)

var update = flag.Bool("update", false, "update golden files")

// parseAll runs the decoder and the assembler over a whole input.
func parseAll(t testing.TB, r io.Reader) []Report {
	t.Helper()
	dec := kmsg.NewDecoder(r)
	a := NewAssembler()
	var out []Report
	for {
		rec, err := dec.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("decoding: %v", err)
		}
		out = append(out, a.Add(rec)...)
	}
	return append(out, a.Flush()...)
}

func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.log")
	kfiles, _ := filepath.Glob("testdata/*.kmsg")
	files = append(files, kfiles...)
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(parseAll(t, bytes.NewReader(in)), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := strings.TrimSuffix(strings.TrimSuffix(f, ".log"), ".kmsg") + filepath.Ext(f) + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden (run with -update): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s:\n%s", f, golden, got)
			}
		})
	}
}
