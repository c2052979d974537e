package kmsg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// syslog(2) actions (include/linux/syslog.h).
const (
	syslogReadAll    = 3  // SYSLOG_ACTION_READ_ALL: the newest bytes that fit, non-destructive
	syslogSizeBuffer = 10 // SYSLOG_ACTION_SIZE_BUFFER: the ring buffer's size
)

// SyslogPoll is how often a Syslog reader asks the kernel for new records:
// syslog(2) cannot wait for them as /dev/kmsg can.
const SyslogPoll = 500 * time.Millisecond

// firstRead is the size of a poll's first read: READ_ALL with a small
// buffer returns only the newest records, so an idle poll copies little.
const firstRead = 16 << 10

// Syslog reads the kernel log through the syslog(2) system call
// (SYSLOG_ACTION_READ_ALL), for where /dev/kmsg cannot be opened: a
// container's device cgroup refuses the device to every unprivileged
// container, but the system call needs only CAP_SYSLOG. The kernel
// formats records as `dmesg -r` prints them, "<prio>[seconds.micros]
// text", one line per line of a record; each line becomes a Record.
//
// READ_ALL does not consume what it reads (the destructive READ would
// steal records from a host's klogd), so Syslog follows the log by
// timestamp: it returns records newer than the last one returned. That
// needs printk timestamps (printk.time=1, every distribution's default);
// OpenSyslog fails without them.
type Syslog struct {
	read func(b []byte) (int, error)
	buf  []byte
	max  int // the ring buffer's size
	// last is the stamp of the newest record returned and lastN how many
	// records with exactly that stamp were returned.
	last    time.Duration
	lastN   int
	started bool
	pending []Record
	lost    int
	// untimed counts lines without a stamp, which cannot be followed.
	untimed int
}

// OpenSyslog checks that syslog(2) may read the kernel log and returns a
// reader that starts after the newest record (fromEnd) or at the oldest
// one still in the buffer.
func OpenSyslog(fromEnd bool) (*Syslog, error) {
	return openSyslog(fromEnd, func(b []byte) (int, error) {
		if len(b) == 0 {
			return unix.Klogctl(syslogSizeBuffer, nil)
		}
		return unix.Klogctl(syslogReadAll, b)
	})
}

// openSyslog takes the system call as read: with an empty buffer it
// returns the ring buffer's size, else READ_ALL's bytes.
func openSyslog(fromEnd bool, read func([]byte) (int, error)) (*Syslog, error) {
	size, err := read(nil)
	if err != nil {
		return nil, fmt.Errorf("syslog(2) SIZE_BUFFER: %w (reading the kernel log needs CAP_SYSLOG)", err)
	}
	if size <= 0 {
		return nil, fmt.Errorf("syslog(2) SIZE_BUFFER: kernel log buffer size %d", size)
	}
	s := &Syslog{read: read, max: size}
	recs, err := s.poll()
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 && s.untimed > 0 {
		return nil, errors.New("syslog(2): kernel log lines carry no timestamps (printk.time=0): cannot tell new records from old")
	}
	if !fromEnd {
		s.pending = recs
	}
	return s, nil
}

// Lost reports how many polls found that records had been overwritten
// before they could be read.
func (s *Syslog) Lost() int { return s.lost }

// Next returns the next record, polling every SyslogPoll until one
// arrives or ctx ends.
func (s *Syslog) Next(ctx context.Context) (Record, error) {
	for len(s.pending) == 0 {
		if err := ctx.Err(); err != nil {
			return Record{}, err
		}
		recs, err := s.poll()
		if err != nil {
			return Record{}, err
		}
		s.pending = recs
		if len(recs) > 0 {
			break
		}
		t := time.NewTimer(SyslogPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return Record{}, ctx.Err()
		case <-t.C:
		}
	}
	r := s.pending[0]
	s.pending = s.pending[1:]
	return r, nil
}

// poll reads the newest records and returns those after the last one
// returned. It reads the tail of the buffer and, while that holds no
// record already seen, a tail twice as large, up to the whole buffer.
func (s *Syslog) poll() ([]Record, error) {
	n := min(firstRead, s.max)
	for {
		if cap(s.buf) < n {
			s.buf = make([]byte, n)
		}
		got, err := s.read(s.buf[:n])
		if err != nil {
			return nil, fmt.Errorf("syslog(2) READ_ALL: %w", err)
		}
		recs, found := s.newer(s.buf[:got])
		if found || n >= s.max {
			if !found && s.started && len(recs) > 0 {
				s.lost++ // the whole buffer is newer than the last record seen
			}
			s.advance(recs)
			return recs, nil
		}
		n = min(2*n, s.max)
	}
}

// newer parses b and returns the records after the last one returned;
// found reports that b reached back to it (or that nothing was returned
// yet, when everything is new).
func (s *Syslog) newer(b []byte) (recs []Record, found bool) {
	seenAtLast := 0
	found = !s.started
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		r, ok := parseSyslogLine(string(line))
		if !ok {
			if len(line) > 0 {
				s.untimed++
			}
			continue
		}
		if s.started {
			switch {
			case r.Monotonic < s.last:
				found = true
				continue
			case r.Monotonic == s.last:
				found = true
				if seenAtLast++; seenAtLast <= s.lastN {
					continue
				}
			}
		}
		recs = append(recs, r)
	}
	return recs, found
}

// advance remembers the newest of recs as the last record returned.
func (s *Syslog) advance(recs []Record) {
	for _, r := range recs {
		if !s.started || r.Monotonic > s.last {
			s.last, s.lastN, s.started = r.Monotonic, 1, true
		} else if r.Monotonic == s.last {
			s.lastN++
		}
	}
}

// parseSyslogLine parses "<prio>[seconds.micros] text", with an optional
// caller id ("[    T42] ", CONFIG_PRINTK_CALLER) after the stamp, as the
// text decoder's dmesg -r carrier does. Lines without a stamp are not
// returned.
func parseSyslogLine(l string) (Record, bool) {
	var d decodedLine
	decodeLine(&d, l, 0, nil)
	if d.kind != lineRecord || d.rec.Carrier != CarrierDmesg || !hasStamp(l) {
		return Record{}, false
	}
	return d.rec, true
}

// hasStamp reports whether l, after its "<prio>", starts with a time since
// boot (not a caller id or dmesg -d's delta alone).
func hasStamp(l string) bool {
	if len(l) > 0 && l[0] == '<' {
		if end := strings.IndexByte(l, '>'); end > 0 {
			l = l[end+1:]
		}
	}
	end := strings.IndexByte(l, ']')
	if len(l) == 0 || l[0] != '[' || end < 0 {
		return false
	}
	s := strings.TrimLeft(l[1:end], " ")
	var mono time.Duration
	return s != "" && isDigit(s[0]) && parseSeconds(&mono, s)
}
