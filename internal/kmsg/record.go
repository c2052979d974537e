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
	// journal, syslog with a year); zero otherwise.
	Time time.Time
	// Stamp is the wall-clock time as the carrier printed it when it could
	// not be made a Time: a syslog or journal date without a year (giving
	// it this year would be a guess), or a dmesg -T stamp in a locale
	// other than English.
	Stamp string
	Flags string
	// Caller is printk's caller id ("T9185" a task, "C1" a CPU) when the
	// kernel printed it (CONFIG_PRINTK_CALLER).
	Caller  string
	Carrier Carrier
	// Line is the input line the record starts on (1-based); 0 for
	// records read from the device.
	Line int
	// Text is the message; continuation lines are joined with "\n",
	// wrapped lines put back together. /dev/kmsg dictionary lines are in
	// Dict, not here.
	Text string
	Dict map[string]string
	// Program names the program another message in a syslog or journal
	// carrier came from (its syslog tag, or the journal's
	// SYSLOG_IDENTIFIER); "" for the kernel's. Decoders return such
	// records only after KeepPrograms.
	Program string
}

// ErrMalformed is wrapped by errors for records that do not parse.
var ErrMalformed = errors.New("malformed kmsg record")

// ParseRecord parses one /dev/kmsg record: "prio,seq,usec,flags[,...];text"
// followed by optional dictionary lines that start with a space.
func ParseRecord(b []byte) (Record, error) {
	s := strings.TrimSuffix(string(b), "\n")
	first, dict, _ := strings.Cut(s, "\n")
	var r Record
	if !cutKmsgHeader(&r, first) {
		hdr, _, found := strings.Cut(first, ";")
		if !found {
			return Record{}, fmt.Errorf("%w: no ';'", ErrMalformed)
		}
		return Record{}, fmt.Errorf("%w: header %q", ErrMalformed, hdr)
	}
	r.Text = unescape(r.Text)
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
