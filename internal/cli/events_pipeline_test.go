package cli

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"podwarden/internal/kmsg"
	"podwarden/internal/oomreport"
)

// sequential is the one-loop parse pipeFile must match.
func sequential(t *testing.T, in string) []string {
	t.Helper()
	dec := kmsg.NewDecoder(strings.NewReader(in), time.UTC)
	a := oomreport.NewAssembler()
	var reps []oomreport.Report
	for {
		r, err := dec.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		reps = append(reps, a.Add(r)...)
	}
	return encodeAll(t, append(reps, a.Flush()...))
}

func encodeAll(t *testing.T, reps []oomreport.Report) []string {
	t.Helper()
	var out []string
	for i := range reps {
		b, err := reps[i].AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// collect runs pipeFile over r and returns the reports as JSON.
func collect(t *testing.T, r io.Reader) ([]string, error) {
	t.Helper()
	var reps []oomreport.Report
	_, err := pipeFile(context.Background(), kmsg.NewDecoder(r, time.UTC), func(r *oomreport.Report) error {
		reps = append(reps, *r)
		return nil
	})
	return encodeAll(t, reps), err
}

// bigLog repeats every fixture with unrelated lines between them, so a
// report straddles record batches.
func bigLog(t *testing.T) string {
	t.Helper()
	files, _ := filepath.Glob("../../internal/oomreport/testdata/*.log")
	var sb strings.Builder
	for i := range 40 {
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			sb.Write(b)
			for range i * 7 {
				sb.WriteString("[426200.000000] eth0: link up, 1000Mbps, full-duplex\n")
			}
		}
	}
	return sb.String()
}

func TestPipeFileMatchesSequential(t *testing.T) {
	files, _ := filepath.Glob("../../internal/oomreport/testdata/*.log")
	kfiles, _ := filepath.Glob("../../internal/oomreport/testdata/*.kmsg")
	inputs := map[string]string{"big": bigLog(t), "empty": ""}
	for _, f := range append(files, kfiles...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs[filepath.Base(f)] = string(b)
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			want := sequential(t, in)
			got, err := collect(t, strings.NewReader(in))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("pipeline gave %d reports, loop %d, or they differ", len(got), len(want))
			}
		})
	}
}

func TestPipeFileWriteErrorStops(t *testing.T) {
	boom := errors.New("disk full")
	n := 0
	in := bigLog(t)
	done := make(chan error, 1)
	go func() {
		_, err := pipeFile(context.Background(), kmsg.NewDecoder(strings.NewReader(in), time.UTC),
			func(*oomreport.Report) error {
				if n++; n == 3 {
					return boom
				}
				return nil
			})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want %v", err, boom)
		}
		if n != 3 {
			t.Errorf("writer called %d times after failing at 3", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("pipeline did not stop after a write error")
	}
}

func TestPipeFileReadError(t *testing.T) {
	in := bigLog(t)
	// The read fails halfway: what was read is still reported, including
	// the report open at that point, and the error comes back.
	r := iotest.TimeoutReader(iotest.HalfReader(strings.NewReader(in)))
	got, err := collect(t, r)
	if !errors.Is(err, iotest.ErrTimeout) || !strings.Contains(err.Error(), "reading kernel log") {
		t.Fatalf("err = %v", err)
	}
	want := sequential(t, in)
	if len(got) == 0 || len(got) >= len(want) {
		t.Fatalf("%d reports before the error, of %d", len(got), len(want))
	}
}

// endless repeats a log forever.
type endless struct {
	log string
	r   *strings.Reader
}

func (e *endless) Read(p []byte) (int, error) {
	if e.r == nil || e.r.Len() == 0 {
		e.r = strings.NewReader(e.log)
	}
	return e.r.Read(p)
}

func TestPipeFileCancelStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	n := 0
	src := &endless{log: bigLog(t)}
	go func() {
		_, err := pipeFile(ctx, kmsg.NewDecoder(src, time.UTC), func(*oomreport.Report) error {
			if n++; n == 100 {
				cancel()
			}
			return nil
		})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("err = %v after an interrupt, want nil", err)
		}
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("pipeline did not stop when its context ended")
	}
}
