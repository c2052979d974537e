package kmsg

import (
	"bufio"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// FuzzLineReader holds lineReader equal to the bufio.Scanner it replaced,
// with small buffers so that growth and the too-long error are reached,
// and with readers that return little data at a time or an error.
func FuzzLineReader(f *testing.F) {
	f.Add("a\nb\r\n\r\nc", uint8(4), uint8(16), uint8(0))
	f.Add("0123456789abcdef\nx\n", uint8(2), uint8(8), uint8(1))
	f.Add("\n\n\nlast", uint8(1), uint8(1), uint8(2))
	f.Add("line\nlonger line here\nend\n", uint8(3), uint8(12), uint8(3))
	f.Fuzz(func(t *testing.T, in string, size, limit, mode uint8) {
		size, limit = max(size, 1), max(limit, 1)
		wantLines, wantErr := scanLines(reader(in, mode), int(size), int(limit))
		lr := newLineReader(reader(in, mode), int(size), int(limit))
		var gotLines []string
		for {
			l, ok := lr.next()
			if !ok {
				break
			}
			gotLines = append(gotLines, l)
		}
		gotErr := lr.errReading()
		if !slices.Equal(gotLines, wantLines) || errors.Is(gotErr, bufio.ErrTooLong) != errors.Is(wantErr, bufio.ErrTooLong) ||
			(gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%q size %d max %d mode %d:\nlineReader %q, %v\nScanner    %q, %v", in, size, limit, mode, gotLines, gotErr, wantLines, wantErr)
		}
	})
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

func scanLines(r io.Reader, size, limit int) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, size), limit)
	var out []string
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out, sc.Err()
}

// TestDecoderRepeatedStamp covers the cached wall-clock stamp: lines that
// share one get the same time, and a new stamp is parsed again.
func TestDecoderRepeatedStamp(t *testing.T) {
	in := "[Thu Nov 26 21:00:00 2026] a\n[Thu Nov 26 21:00:00 2026] b\n[Thu Nov 26 21:00:01 2026] c\n"
	d := NewDecoder(strings.NewReader(in), FormatAuto)
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
