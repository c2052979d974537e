package kmsg

import (
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// FuzzLineReader holds lineReader to a model of it: the input split at
// newlines as bufio.Scanner's ScanLines splits it, with lines of max bytes
// or more skipped and counted instead of ending the input. Small buffers
// reach growth and skipping; readers return little data at a time or fail
// part way (then what was read must be a prefix of the model's lines).
func FuzzLineReader(f *testing.F) {
	f.Add("a\nb\r\n\r\nc", uint8(4), uint8(16), uint8(0))
	f.Add("0123456789abcdef\nx\n", uint8(2), uint8(8), uint8(1))
	f.Add("\n\n\nlast", uint8(1), uint8(1), uint8(2))
	f.Add("line\nlonger line here\nend\n", uint8(3), uint8(12), uint8(3))
	f.Add("short\n"+strings.Repeat("x", 40)+"\nafter\n"+strings.Repeat("y", 9), uint8(2), uint8(8), uint8(0))
	f.Fuzz(func(t *testing.T, in string, size, limit, mode uint8) {
		size, limit = max(size, 1), max(limit, 1)
		wantLines, wantNums, wantSkipped := modelLines(in, int(limit))
		lr := newLineReader(reader(in, mode), int(size), int(limit))
		var gotLines []string
		var gotNums []int
		for {
			l, n, ok := lr.next()
			if !ok {
				break
			}
			gotLines, gotNums = append(gotLines, l), append(gotNums, n)
		}
		gotErr := lr.errReading()
		if mode%4 == 3 {
			// The read failed part way: the lines before it, the last
			// maybe cut short by the error.
			raw := strings.Split(in, "\n")
			for i, l := range gotLines {
				n := gotNums[i]
				if n < 1 || n > len(raw) {
					t.Fatalf("%q: line number %d of %d", in, n, len(raw))
				}
				want := strings.TrimSuffix(raw[n-1], "\r")
				if i < len(gotLines)-1 && (l != want || len(raw[n-1]) >= int(limit)) ||
					i == len(gotLines)-1 && !strings.HasPrefix(raw[n-1], l) {
					t.Fatalf("%q: line %d %q, input line %q", in, n, l, raw[n-1])
				}
			}
			return
		}
		if gotErr != nil || !slices.Equal(gotLines, wantLines) || !slices.Equal(gotNums, wantNums) {
			t.Fatalf("%q size %d max %d mode %d:\nlineReader %q %v, %v\nmodel      %q %v", in, size, limit, mode, gotLines, gotNums, gotErr, wantLines, wantNums)
		}
		if lr.nSkipped != len(wantSkipped) || !slices.Equal(lr.skipped, wantSkipped[:min(len(wantSkipped), maxSkippedKept)]) {
			t.Fatalf("%q max %d: skipped %v (%d), model %v", in, limit, lr.skipped, lr.nSkipped, wantSkipped)
		}
	})
}

// modelLines splits s into lines and their numbers as lineReader should,
// and lists the lines of max bytes or more (without the newline), which
// it should skip.
func modelLines(s string, max int) (lines []string, nums []int, skipped []LongLine) {
	raw := strings.Split(s, "\n")
	if raw[len(raw)-1] == "" {
		raw = raw[:len(raw)-1] // a final newline ends the last line
	}
	for i, l := range raw {
		if len(l) >= max {
			skipped = append(skipped, LongLine{Line: i + 1, Bytes: int64(len(l))})
			continue
		}
		lines, nums = append(lines, strings.TrimSuffix(l, "\r")), append(nums, i+1)
	}
	return lines, nums, skipped
}

func reader(s string, mode uint8) io.Reader {
	r := io.Reader(strings.NewReader(s))
	switch mode % 4 {
	case 1:
		return iotest.OneByteReader(r)
	case 2:
		return iotest.HalfReader(r)
	case 3:
		return iotest.TimeoutReader(iotest.HalfReader(r))
	}
	return r
}

// TestLineReaderSkipsHugeLine is the 10 MB line of issue 13: it is
// skipped, its number and length kept, and the lines after it still read.
func TestLineReaderSkipsHugeLine(t *testing.T) {
	in := "first\n" + strings.Repeat("z", 10<<20) + "\nthird\n"
	lr := newLineReader(strings.NewReader(in), chunkSize, maxLine)
	var got []string
	for {
		l, _, ok := lr.next()
		if !ok {
			break
		}
		got = append(got, l)
	}
	if err := lr.errReading(); err != nil || !slices.Equal(got, []string{"first", "third"}) {
		t.Fatalf("lines %q, err %v", got, err)
	}
	if len(lr.skipped) != 1 || lr.skipped[0] != (LongLine{Line: 2, Bytes: 10 << 20}) {
		t.Fatalf("skipped %+v", lr.skipped)
	}
}

// TestDecoderRepeatedStamp covers the cached wall-clock stamp: lines that
// share one get the same time, and a new stamp is parsed again.
func TestDecoderRepeatedStamp(t *testing.T) {
	in := "[Thu Nov 26 21:00:00 2026] a\n[Thu Nov 26 21:00:00 2026] b\n[Thu Nov 26 21:00:01 2026] c\n"
	d := NewDecoder(strings.NewReader(in), time.UTC)
	var recs []Record
	for {
		r, err := d.Next()
		if err != nil {
			break
		}
		recs = append(recs, r)
	}
	if len(recs) != 3 || recs[0].Text != "a" || recs[1].Text != "b" || recs[2].Text != "c" {
		t.Fatalf("records %+v", recs)
	}
	if !recs[0].Time.Equal(recs[1].Time) || recs[2].Time.Sub(recs[1].Time) != time.Second {
		t.Errorf("times %v %v %v", recs[0].Time, recs[1].Time, recs[2].Time)
	}
}
