package kmsg

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

const (
	// chunkSize is how much is read at a time; lines are cut out of one
	// string per chunk instead of one allocation per line, which was a
	// fifth of decoding a large log.
	chunkSize = 256 << 10
	// maxLine matches the 1 MiB token limit the decoder had with
	// bufio.Scanner.
	maxLine = 1 << 20
)

// lineReader splits r into lines as bufio.Scanner with ScanLines does (a
// final line without a newline counts, one "\r" before the newline is
// dropped, a line that fills max bytes is an error wrapping
// bufio.ErrTooLong). The lines are substrings of one string per chunk, so
// a line a caller keeps keeps its chunk alive.
type lineReader struct {
	r     io.Reader
	max   int
	buf   []byte // bytes read and not yet in chunk: an unfinished line
	chunk string // complete lines not yet returned
	err   error  // sticky read error, io.EOF included
}

func newLineReader(r io.Reader, size, max int) *lineReader {
	return &lineReader{r: r, max: max, buf: make([]byte, 0, size)}
}

// next returns the next line, or false at the end of the input (see err).
func (lr *lineReader) next() (string, bool) {
	for {
		if i := strings.IndexByte(lr.chunk, '\n'); i >= 0 {
			l := lr.chunk[:i]
			lr.chunk = lr.chunk[i+1:]
			return dropCR(l), true
		}
		if lr.err != nil {
			if len(lr.buf) > 0 {
				// The last line had no newline.
				l := string(lr.buf)
				lr.buf = lr.buf[:0]
				return dropCR(l), true
			}
			return "", false
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
				lr.err, lr.buf = fmt.Errorf("line of %d bytes or more: %w", lr.max, bufio.ErrTooLong), lr.buf[:0]
				return
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
		if i := bytes.LastIndexByte(lr.buf[searched:], '\n'); i >= 0 {
			end := searched + i + 1
			lr.chunk = string(lr.buf[:end])
			lr.buf = lr.buf[:copy(lr.buf, lr.buf[end:])]
			return
		}
		searched = len(lr.buf)
	}
}

func dropCR(s string) string {
	if len(s) > 0 && s[len(s)-1] == '\r' {
		return s[:len(s)-1]
	}
	return s
}
