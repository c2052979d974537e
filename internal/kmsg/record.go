package kmsg

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Record is one kernel log message.
type Record struct {
	Priority int
	Facility int
	Seq      uint64
	// Monotonic is the time since boot the kernel stamped on the message.
	Monotonic time.Duration
	// Time is the wall clock time when the source knows it (dmesg -T,
	// journal); zero otherwise.
	Time  time.Time
	Flags string
	// Text is the message; continuation lines of dmesg text output are
	// joined with "\n". /dev/kmsg dictionary lines are in Dict, not here.
	Text string
	Dict map[string]string
}

// ErrMalformed is wrapped by errors for records that do not parse.
var ErrMalformed = errors.New("malformed kmsg record")

// ParseRecord parses one /dev/kmsg record: "prio,seq,usec,flags[,...];text"
// followed by optional dictionary lines that start with a space.
func ParseRecord(b []byte) (Record, error) {
	s := string(b)
	semi := strings.IndexByte(s, ';')
	if semi < 0 {
		return Record{}, fmt.Errorf("%w: no ';'", ErrMalformed)
	}
	hdr, rest := s[:semi], s[semi+1:]
	fields := strings.Split(hdr, ",")
	if len(fields) < 3 {
		return Record{}, fmt.Errorf("%w: header %q", ErrMalformed, hdr)
	}
	pf, err := strconv.ParseUint(fields[0], 10, 32)
	if err != nil {
		return Record{}, fmt.Errorf("%w: priority: %w", ErrMalformed, err)
	}
	seq, err := strconv.ParseUint(fields[1], 10, 64)
	if err != nil {
		return Record{}, fmt.Errorf("%w: seq: %w", ErrMalformed, err)
	}
	usec, err := strconv.ParseInt(fields[2], 10, 64)
	if err != nil || usec < 0 {
		return Record{}, fmt.Errorf("%w: timestamp %q", ErrMalformed, fields[2])
	}
	r := Record{Priority: int(pf & 7), Facility: int(pf >> 3), Seq: seq,
		Monotonic: time.Duration(usec) * time.Microsecond}
	if len(fields) > 3 {
		r.Flags = fields[3]
	}
	rest = strings.TrimSuffix(rest, "\n")
	text, dict, _ := strings.Cut(rest, "\n")
	r.Text = unescape(text)
	for line := range strings.SplitSeq(dict, "\n") {
		line = strings.TrimPrefix(line, " ")
		if k, v, ok := strings.Cut(line, "="); ok {
			if r.Dict == nil {
				r.Dict = map[string]string{}
			}
			r.Dict[k] = unescape(v)
		}
	}
	return r, nil
}

// unescape undoes the kernel's \xNN escaping of non-printable bytes.
func unescape(s string) string {
	if !strings.Contains(s, `\x`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if v, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
