package kmsg

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Format names a text log layout.
type Format int

// Text formats the Decoder understands.
const (
	FormatAuto    Format = iota
	FormatDmesg          // "[  123.456789] text"
	FormatDmesgT         // "[Thu Nov 26 21:00:00 2026] text"
	FormatJournal        // journalctl -k -o short-precise
	FormatJSON           // journalctl -k -o json
	FormatKmsg           // saved /dev/kmsg records, one per line
)

var (
	reDmesg   = regexp.MustCompile(`^\[\s*(\d+)\.(\d+)\] ?`)
	reDmesgT  = regexp.MustCompile(`^\[(\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4})\] ?`)
	reJournal = regexp.MustCompile(`^(\w{3} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)?) \S+ kernel: ?`)
	reKmsg    = regexp.MustCompile(`^\d+,\d+,\d+,[^;]*;`)
)

// Decoder turns kernel log text into Records one at a time, in constant
// memory.
//
// Record texts are substrings of the chunk of input they were read with,
// so keeping one keeps up to 256 KiB alive: strings.Clone what you keep
// for long.
type Decoder struct {
	lines   *lineReader
	format  Format
	next    Record // record being built, held back for continuation lines
	hasNext bool
	cont    []string // its continuation lines, joined when it is returned
	year    int
	// lastStamp and lastTime cache the previous wall-clock stamp.
	lastStamp string
	lastTime  time.Time
}

// NewDecoder reads r in format f; FormatAuto looks at the first lines.
func NewDecoder(r io.Reader, f Format) *Decoder {
	return &Decoder{lines: newLineReader(r, chunkSize, maxLine), format: f, year: time.Now().Year()}
}

// Format reports the detected (or given) format.
func (d *Decoder) Format() Format { return d.format }

func detect(line string) Format {
	switch {
	case strings.HasPrefix(line, "{"):
		return FormatJSON
	case reKmsg.MatchString(line):
		return FormatKmsg
	case reDmesgT.MatchString(line):
		return FormatDmesgT
	case reDmesg.MatchString(line):
		return FormatDmesg
	case reJournal.MatchString(line):
		return FormatJournal
	}
	return FormatAuto
}

// Next returns the next record or io.EOF.
func (d *Decoder) Next() (Record, error) {
	for {
		l, ok := d.lines.next()
		if !ok {
			if d.hasNext {
				return d.take(), nil
			}
			if err := d.lines.errReading(); err != nil {
				return Record{}, fmt.Errorf("reading kernel log: %w", err)
			}
			return Record{}, io.EOF
		}
		if d.format == FormatAuto {
			d.format = detect(l)
			if d.format == FormatAuto {
				continue // banner or junk before the first record
			}
		}
		r, cont, ok := d.parse(l)
		if !ok {
			continue
		}
		if cont {
			// Indented lines in dmesg output continue the previous
			// record (memcg stats are printed that way).
			if d.hasNext {
				d.cont = append(d.cont, strings.TrimLeft(r.Text, " "))
			}
			continue
		}
		if !d.hasNext {
			d.next, d.hasNext = r, true
			continue
		}
		out := d.take()
		d.next, d.hasNext = r, true
		return out, nil
	}
}

// take returns the held-back record with its continuation lines joined
// once (appending them one by one was quadratic in a memcg stats block).
func (d *Decoder) take() Record {
	r := d.next
	d.next, d.hasNext = Record{}, false
	if len(d.cont) > 0 {
		r.Text += "\n" + strings.Join(d.cont, "\n")
		d.cont = d.cont[:0]
	}
	return r
}

// parseTime is time.ParseInLocation in the local zone, remembering the
// last stamp: dmesg -T prints whole seconds, so runs of lines share one.
func (d *Decoder) parseTime(layout, stamp string) (time.Time, error) {
	if stamp == d.lastStamp && stamp != "" {
		return d.lastTime, nil
	}
	t, err := time.ParseInLocation(layout, stamp, time.Local)
	if err != nil {
		return t, err
	}
	d.lastStamp, d.lastTime = strings.Clone(stamp), t
	return t, nil
}

// parse returns the record for line l; cont is set for a continuation line
// whose Text should be appended to the previous record.
func (d *Decoder) parse(l string) (r Record, cont, ok bool) {
	switch d.format {
	case FormatDmesg:
		if r, ok := fastDmesg(l); ok {
			return r, false, true
		}
		var m []int
		if strings.HasPrefix(l, "[") {
			// Indented continuation lines are most of a memcg stats
			// block; the regexp cannot match them.
			m = reDmesg.FindStringSubmatchIndex(l)
		}
		if m == nil {
			if strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") {
				return Record{Text: l}, true, true
			}
			return gapRecord(l)
		}
		sec, _ := strconv.ParseInt(l[m[2]:m[3]], 10, 64)
		frac := l[m[4]:m[5]]
		us, _ := strconv.ParseInt((frac + "000000")[:6], 10, 64)
		return Record{Monotonic: time.Duration(sec)*time.Second + time.Duration(us)*time.Microsecond,
			Text: l[m[1]:]}, false, true
	case FormatDmesgT:
		m := reDmesgT.FindStringSubmatchIndex(l)
		if m == nil {
			if strings.HasPrefix(l, " ") {
				return Record{Text: l}, true, true
			}
			return gapRecord(l)
		}
		t, err := d.parseTime("Mon Jan _2 15:04:05 2006", l[m[2]:m[3]])
		if err != nil {
			return Record{}, false, false
		}
		return Record{Time: t, Text: l[m[1]:]}, false, true
	case FormatJournal:
		m := reJournal.FindStringSubmatchIndex(l)
		if m == nil {
			if strings.HasPrefix(l, " ") {
				return Record{Text: l}, true, true
			}
			return gapRecord(l)
		}
		t, err := d.parseTime("Jan _2 15:04:05.999999999 2006", l[m[2]:m[3]]+" "+strconv.Itoa(d.year))
		if err != nil {
			return Record{}, false, false
		}
		return Record{Time: t, Text: l[m[1]:]}, false, true
	case FormatJSON:
		return parseJSON(l)
	case FormatKmsg:
		if strings.HasPrefix(l, " ") {
			return Record{}, false, false // dictionary line: metadata, not text
		}
		rec, err := ParseRecord([]byte(l))
		return rec, false, err == nil
	}
	return Record{}, false, false
}

func parseJSON(l string) (Record, bool, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(l), &m) != nil {
		return Record{}, false, false
	}
	var r Record
	var s string
	if json.Unmarshal(m["MESSAGE"], &s) == nil {
		r.Text = s
	} else {
		// journald stores messages with non-UTF-8 bytes as byte arrays.
		var bs []byte
		var ints []int
		if json.Unmarshal(m["MESSAGE"], &ints) != nil {
			return Record{}, false, false
		}
		for _, i := range ints {
			bs = append(bs, byte(i))
		}
		r.Text = string(bs)
	}
	if us, ok := jsonInt(m["__MONOTONIC_TIMESTAMP"]); ok {
		r.Monotonic = time.Duration(us) * time.Microsecond
	}
	if us, ok := jsonInt(m["_SOURCE_MONOTONIC_TIMESTAMP"]); ok {
		r.Monotonic = time.Duration(us) * time.Microsecond
	}
	if us, ok := jsonInt(m["__REALTIME_TIMESTAMP"]); ok {
		r.Time = time.UnixMicro(us)
	}
	if p, ok := jsonInt(m["PRIORITY"]); ok {
		r.Priority = int(p)
	}
	// journald splits multi-line messages into one entry; keep them whole.
	return r, false, true
}

func jsonInt(raw json.RawMessage) (int64, bool) {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// gapRecord keeps a line with no timestamp (an editor's "<SNIP>", a
// truncation marker) as a record so consumers can see that lines are
// missing; blank lines are dropped.
func gapRecord(l string) (Record, bool, bool) {
	if strings.TrimSpace(l) == "" {
		return Record{}, false, false
	}
	return Record{Text: l, Flags: "untimed"}, false, true
}

// fastDmesg parses "[  123.456789] text" without a regexp: this is the hot
// path when reading large logs.
func fastDmesg(l string) (Record, bool) {
	if len(l) < 4 || l[0] != '[' {
		return Record{}, false
	}
	end := strings.IndexByte(l, ']')
	if end < 0 {
		return Record{}, false
	}
	ts := strings.TrimLeft(l[1:end], " ")
	dot := strings.IndexByte(ts, '.')
	if dot <= 0 || len(ts)-dot-1 != 6 {
		return Record{}, false
	}
	var sec, us int64
	for _, c := range ts[:dot] {
		if c < '0' || c > '9' {
			return Record{}, false
		}
		sec = sec*10 + int64(c-'0')
	}
	for _, c := range ts[dot+1:] {
		if c < '0' || c > '9' {
			return Record{}, false
		}
		us = us*10 + int64(c-'0')
	}
	text := l[end+1:]
	text = strings.TrimPrefix(text, " ")
	return Record{Monotonic: time.Duration(sec)*time.Second + time.Duration(us)*time.Microsecond, Text: text}, true
}
