package kmsg

import (
	"bytes"
	"errors"
	"io"
	"strings"
)

const (
	// chunkSize is how much is read at a time; lines are cut out of one
	// string per chunk instead of one allocation per line, which was a
	// fifth of decoding a large log.
	chunkSize = 256 << 10
	// maxLine is the longest line kept. No kernel message comes near it
	// (printk caps a record at 1 KiB, a journal entry at a few); a longer
	// line is a binary blob or a log gone wrong, and is skipped.
	maxLine = 1 << 20
)

// LongLine is a line skipped because it was maxLine bytes or longer.
type LongLine struct {
	Line  int   // 1-based line number
	Bytes int64 // its length, without the newline
}

// lineReader splits r into lines as bufio.Scanner with ScanLines does (a
// final line without a newline counts, one "\r" before the newline is
// dropped), except that a line of max bytes or more is skipped, counted
// and reported by skipped instead of ending the input. The lines are
// substrings of one string per chunk, so a line a caller keeps keeps its
// chunk alive.
type lineReader struct {
	r     io.Reader
	max   int
	buf   []byte // bytes read and not yet in chunk: an unfinished line
	chunk string // complete lines not yet returned
	// nbsp is set when the chunk holds a 0xc2 byte, which starts a UTF-8
	// no-break space: lines need looking at for one only then.
	nbsp bool
	err  error // sticky read error, io.EOF included
	n    int   // number of the line last returned or skipped
	// long is set while the rest of an over-long line is being dropped.
	long    bool
	longLen int64
	// skipped holds the first maxSkippedKept skipped lines, nSkipped
	// counts them all.
	skipped  []LongLine
	nSkipped int
}

func newLineReader(r io.Reader, size, max int) *lineReader {
	return &lineReader{r: r, max: max, buf: make([]byte, 0, min(size, max))}
}

// next returns the next line and its 1-based number, or false at the end
// of the input (see errReading).
func (lr *lineReader) next() (string, int, bool) {
	for {
		if i := strings.IndexByte(lr.chunk, '\n'); i >= 0 {
			l := lr.chunk[:i]
			lr.chunk = lr.chunk[i+1:]
			lr.n++
			return dropCR(l), lr.n, true
		}
		if lr.err != nil {
			if len(lr.buf) > 0 {
				// The last line had no newline.
				l := string(lr.buf)
				lr.buf = lr.buf[:0]
				lr.nbsp = strings.IndexByte(l, 0xc2) >= 0
				lr.n++
				return dropCR(l), lr.n, true
			}
			return "", lr.n, false
		}
		lr.fill()
	}
}

// errReading reports the read error that ended the input, nil for io.EOF.
func (lr *lineReader) errReading() error {
	if errors.Is(lr.err, io.EOF) {
		return nil
	}
	return lr.err
}

// fill reads until buf holds a newline or the input ends, then moves the
// complete lines into chunk.
func (lr *lineReader) fill() {
	searched, empty := 0, 0
	for lr.err == nil {
		if len(lr.buf) == cap(lr.buf) {
			if len(lr.buf) >= lr.max {
				// Too long to keep: drop what is buffered and the rest of
				// the line up to its newline.
				lr.long, lr.longLen = true, int64(len(lr.buf))
				lr.buf, searched = lr.buf[:0], 0
				continue
			}
			grown := make([]byte, len(lr.buf), min(2*cap(lr.buf), lr.max))
			lr.buf = grown[:copy(grown, lr.buf)]
		}
		n, err := lr.r.Read(lr.buf[len(lr.buf):cap(lr.buf)])
		lr.buf = lr.buf[:len(lr.buf)+n]
		switch {
		case err != nil:
			lr.err = err
		case n == 0:
			// As bufio.Scanner: a reader that keeps returning nothing is
			// broken, not slow.
			if empty++; empty >= 100 {
				lr.err = io.ErrNoProgress
			}
			continue
		}
		empty = 0
		if lr.long {
			i := bytes.IndexByte(lr.buf, '\n')
			if i < 0 && lr.err == nil {
				lr.longLen += int64(len(lr.buf))
				lr.buf = lr.buf[:0]
				continue
			}
			if i < 0 {
				i = len(lr.buf) // the input ended inside the long line
			}
			lr.longLen += int64(i)
			lr.n++
			lr.skipLine()
			rest := min(i+1, len(lr.buf))
			lr.buf = lr.buf[:copy(lr.buf, lr.buf[rest:])]
			searched = 0
			if len(lr.buf) == 0 {
				continue
			}
		}
		if i := bytes.LastIndexByte(lr.buf[searched:], '\n'); i >= 0 {
			end := searched + i + 1
			lr.chunk = string(lr.buf[:end])
			lr.buf = lr.buf[:copy(lr.buf, lr.buf[end:])]
			lr.nbsp = strings.IndexByte(lr.chunk, 0xc2) >= 0
			return
		}
		searched = len(lr.buf)
	}
	if !lr.long && len(lr.buf) >= lr.max {
		// The input ended just as the buffer filled.
		lr.long, lr.longLen, lr.buf = true, int64(len(lr.buf)), lr.buf[:0]
	}
	if lr.long {
		lr.n++
		lr.skipLine()
	}
}

// maxSkippedKept bounds the skipped lines remembered by number; the rest
// are only counted.
const maxSkippedKept = 16

func (lr *lineReader) skipLine() {
	if len(lr.skipped) < maxSkippedKept {
		lr.skipped = append(lr.skipped, LongLine{Line: lr.n, Bytes: lr.longLen})
	}
	lr.nSkipped++
	lr.long, lr.longLen = false, 0
}

func dropCR(s string) string {
	if len(s) > 0 && s[len(s)-1] == '\r' {
		return s[:len(s)-1]
	}
	return s
}
