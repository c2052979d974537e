package kmsg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// DefaultPath is the kernel's structured log device.
const DefaultPath = "/dev/kmsg"

// Device reads records from /dev/kmsg (or a file or FIFO with the same
// record framing, for tests).
type Device struct {
	f       *os.File
	buf     []byte
	lost    int
	pending []Record
	follow  bool
}

// OpenDevice opens path; fromEnd skips records already in the buffer.
// Without follow, Next returns io.EOF once the buffered records are read;
// with follow it waits for new ones until its context ends.
func OpenDevice(path string, fromEnd, follow bool) (*Device, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if fromEnd {
		// On /dev/kmsg SEEK_END moves to after the newest record; on a
		// FIFO it fails with ESPIPE, which means "already at the end".
		if _, err := f.Seek(0, io.SeekEnd); err != nil && !errors.Is(err, syscall.ESPIPE) {
			_ = f.Close()
			return nil, fmt.Errorf("seeking to end of %s: %w", path, err)
		}
	}
	// A record is at most 8 KiB plus dictionary; one read(2) returns one.
	return &Device{f: f, buf: make([]byte, 16384), follow: follow}, nil
}

// Lost reports how many EPIPE overruns were seen.
func (d *Device) Lost() int { return d.lost }

// Close closes the device.
func (d *Device) Close() error { return d.f.Close() }

// Next returns the next record, blocking until one arrives or ctx ends.
// io.EOF is returned for a regular file at its end.
func (d *Device) Next(ctx context.Context) (Record, error) {
	if len(d.pending) > 0 {
		r := d.pending[0]
		d.pending = d.pending[1:]
		return r, nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return Record{}, err
		}
		_ = d.f.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := d.f.Read(d.buf)
		switch {
		case errors.Is(err, syscall.EPIPE):
			// The ring buffer overwrote records we had not read yet.
			d.lost++
			continue
		case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, syscall.EAGAIN):
			if !d.follow {
				return Record{}, io.EOF
			}
			continue
		case errors.Is(err, io.EOF) && d.follow:
			// A FIFO with no writer yet reads as EOF: wait for one.
			time.Sleep(50 * time.Millisecond)
			continue
		case errors.Is(err, os.ErrNoDeadline):
			return Record{}, fmt.Errorf("reading kmsg: %w", err)
		case err != nil:
			return Record{}, err
		}
		if n == 0 {
			if d.follow {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return Record{}, io.EOF
		}
		// /dev/kmsg returns one record per read; a FIFO or file may
		// return several, so split on lines that do not start a dict.
		for _, chunk := range splitRecords(d.buf[:n]) {
			if r, perr := ParseRecord(chunk); perr == nil {
				d.pending = append(d.pending, r)
			}
		}
		if len(d.pending) > 0 {
			r := d.pending[0]
			d.pending = d.pending[1:]
			return r, nil
		}
	}
}

func splitRecords(b []byte) [][]byte {
	var out [][]byte
	start := 0
	for i := 0; i < len(b); i++ {
		if b[i] == '\n' && (i+1 >= len(b) || b[i+1] != ' ') {
			out = append(out, b[start:i+1])
			start = i + 1
		}
	}
	if start < len(b) {
		out = append(out, b[start:])
	}
	return out
}
