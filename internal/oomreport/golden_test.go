package oomreport

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"podwarden/internal/kmsg"
)

var update = flag.Bool("update", false, "update golden files")

// parseAll runs the decoder, the assembler and a Dedup over a whole
// input, as `podwarden events --file` does.
func parseAll(t testing.TB, r io.Reader) []Report {
	t.Helper()
	reps, _ := parseWithStrays(t, r)
	return reps
}

func parseWithStrays(t testing.TB, r io.Reader) ([]Report, []Stray) {
	t.Helper()
	reps, strays := assembleAll(t, r)
	var d Dedup
	kept := reps[:0]
	for i := range reps {
		if _, dup := d.Repeat(&reps[i]); !dup {
			kept = append(kept, reps[i])
		}
	}
	return kept, strays
}

// assembleAll runs the decoder and the assembler over a whole input.
func assembleAll(t testing.TB, r io.Reader) ([]Report, []Stray) {
	t.Helper()
	dec := kmsg.NewDecoder(r, time.UTC)
	dec.KeepPrograms()
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
	out = append(out, a.Flush()...)
	strays, _ := a.Strays()
	return out, strays
}

// TestGolden parses each fixture into X.<ext>.golden.json, and what went
// into no report into X.<ext>.strays.golden (absent when there is none).
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
			reps, strays := parseWithStrays(t, bytes.NewReader(in))
			got, err := json.MarshalIndent(reps, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			base := strings.TrimSuffix(strings.TrimSuffix(f, ".log"), ".kmsg") + filepath.Ext(f)
			checkGolden(t, base+".golden.json", got)
			var sb strings.Builder
			for _, s := range strays {
				fmt.Fprintf(&sb, "line %d: %s\n\t%s\n", s.Line, s.Why, s.Text)
			}
			checkGolden(t, base+".strays.golden", []byte(sb.String()))
		})
	}
}

// checkGolden compares got with the file golden, or writes it with
// -update; an empty got means the file must not exist.
func checkGolden(t *testing.T, golden string, got []byte) {
	t.Helper()
	if *update {
		if len(got) == 0 {
			if err := os.Remove(golden); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			return
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if errors.Is(err, os.ErrNotExist) && len(got) == 0 {
		return
	}
	if err != nil {
		t.Fatalf("reading golden (run with -update): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("differs from %s:\n%s", golden, got)
	}
}
