package kmsg

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// maxRecord bounds the text of one record built from continuation and
// wrapped lines; what comes after is dropped (no kernel record is near it).
const maxRecord = 64 << 10

// Decoder turns kernel log text into Records one at a time, in constant
// memory. It finds the carrier of every line on its own (see Carrier), so
// files that mix them decode, and it puts back together what pasting did
// to them: lines indented or quoted with "> ", lines wrapped by a mail
// client or a terminal at 72-80 columns, no-break spaces.
//
// A line without a carrier continues the record before it when it is
// indented deeper (dmesg and journalctl print multi-line messages so),
// or when it looks wrapped: the line before it ended near the wrap width
// or with the space of a "format=flowed" soft break. Otherwise it is a
// record of its own (CarrierBare). Syslog and journal lines of other
// programs are dropped with their continuation lines.
//
// Record texts are substrings of the chunk of input they were read with,
// so keeping one keeps up to 256 KiB alive: strings.Clone what you keep
// for long.
type Decoder struct {
	lines *lineReader
	cache stampCache
	// year is what syslog dates without one belong to, from a journal
	// banner; 0 while unknown.
	year int

	held    Record // record being built, held back for continuation lines
	hasHeld bool
	// dropped is set while the lines being read continue a dropped line
	// (another program's syslog message).
	dropped bool
	indent  int  // paste indentation of the held record's first line
	escaped bool // held text is a kmsg record's, with \xNN escapes
	// parts are the held record's lines (parts[0] is held.Text's start);
	// seps[i] joins parts[i] to what is before it: "\n" for a
	// continuation line, "" or " " for a wrap.
	parts, seps []string
	size        int
	// last is the last physical line of the held record, to tell
	// whether the next line was wrapped off it.
	last string
	dl   decodedLine // the line being decoded
	// broken is set by a blank line: what follows starts a new record.
	broken bool

	counts    [numCarriers]int
	nonKernel int
	// programs is set by KeepPrograms.
	programs bool
}

// KeepPrograms makes Next return other programs' syslog and journal
// messages too, with Program set, instead of dropping them: podwarden
// events reads what earlyoom, systemd-oomd and the kubelet logged.
func (d *Decoder) KeepPrograms() { d.programs = true }

// Stats describes what a Decoder has read.
type Stats struct {
	// Lines is how many input lines were read, skipped ones included.
	Lines int
	// Records counts the records returned by carrier.
	Records map[Carrier]int
	// NonKernel counts syslog or journal lines of other programs.
	NonKernel int
	// LongLines lists the first lines skipped for being 1 MiB or longer;
	// Skipped counts them all.
	LongLines []LongLine
	Skipped   int
}

// NewDecoder reads kernel log text from r. Syslog, journal and dmesg -T
// stamps carry no time zone; they are read in loc (time.Local when nil),
// the zone of the machine that wrote the log being unknown.
func NewDecoder(r io.Reader, loc *time.Location) *Decoder {
	if loc == nil {
		loc = time.Local
	}
	return &Decoder{lines: newLineReader(r, chunkSize, maxLine), cache: stampCache{loc: loc}}
}

// Stats reports what has been read so far.
func (d *Decoder) Stats() Stats {
	s := Stats{Lines: d.lines.n, Records: map[Carrier]int{}, NonKernel: d.nonKernel,
		LongLines: append([]LongLine(nil), d.lines.skipped...), Skipped: d.lines.nSkipped}
	for c, n := range d.counts {
		if n > 0 {
			s.Records[Carrier(c)] = n
		}
	}
	return s
}

// Next returns the next record or io.EOF.
func (d *Decoder) Next() (Record, error) {
	for {
		l, n, ok := d.lines.next()
		if !ok {
			if d.hasHeld {
				return d.take(), nil
			}
			if err := d.lines.errReading(); err != nil {
				return Record{}, fmt.Errorf("reading kernel log: %w", err)
			}
			return Record{}, io.EOF
		}
		if d.lines.nbsp {
			l = normalizeSpaces(l)
		}
		dl := &d.dl
		decodeLine(dl, l, d.year, &d.cache)
		switch dl.kind {
		case lineBlank:
			d.broken = true
			continue
		case lineSkip:
			d.banner(l)
			d.broken = true
			continue
		case lineBare:
			if d.continues(dl, l) {
				continue
			}
		case lineNonKernel:
			d.nonKernel++
		}
		var out Record
		had := d.hasHeld
		if had {
			out = d.take()
		}
		d.hold(dl, n, l)
		if had {
			return out, nil
		}
	}
}

// continues adds a carrier-less line to the held record when it continues
// it, and reports whether it did (a line continuing a dropped one is
// dropped).
func (d *Decoder) continues(dl *decodedLine, l string) bool {
	if !d.hasHeld && !d.dropped {
		return false
	}
	if d.broken {
		return false
	}
	text := dl.rec.Text
	sep := "\n"
	if dl.indent > d.indent {
		switch {
		case d.escaped && isDictLine(text):
			return true // /dev/kmsg metadata, not text
		case dl.indent <= 2 && d.held.Carrier != CarrierBare && columns(d.last) == 80:
			// A terminal cut the line just before a space.
			sep = "  "[:dl.indent]
		}
	} else {
		cols, space := columns(d.last), strings.HasSuffix(d.last, " ")
		if !d.wrapped(text, cols, space) {
			return false
		}
		sep = " "
		if space || cols == 80 {
			// A flowed soft break keeps its space; a terminal cuts at
			// its width, inside a word.
			sep = ""
		}
	}
	d.last = l
	if d.dropped {
		return true
	}
	if sep != "\n" && d.size == 0 {
		sep = "" // the record's line held only its carrier
	}
	if d.size+len(sep)+len(text) <= maxRecord {
		d.parts, d.seps = append(d.parts, text), append(d.seps, sep)
		d.size += len(sep) + len(text)
	}
	return true
}

// wrapped reports whether next, a carrier-less line that is not indented
// deeper than the held record, looks like the rest of the record's last
// line (cols wide, ending in a space or not) cut by a mail client or
// terminal: that line was at most 80 columns and next's first word would
// not have fitted on it within 72. Under a bare record (no carrier to
// tell lines apart) only a format=flowed soft break, a line ending in a
// space, counts.
func (d *Decoder) wrapped(next string, cols int, space bool) bool {
	// A format=flowed soft break ends in a space whatever the line's
	// length (a word longer than the width stays whole); other wraps
	// leave lines of at most 80 columns.
	if cols == 0 || cols > 80 && !space || next == "" {
		return false
	}
	if next[0] == '<' || next[0] == '[' {
		return false // "<SNIP>", "[...]": an editor's marks, not text
	}
	if len(next) > 1 && next[0] == next[1] && strings.IndexByte("-.=#*_~", next[0]) >= 0 && cols != 80 {
		// Mail and chat markers ("-- ", "...", "===") unless a terminal
		// cut the line at its width, wherever that fell.
		return false
	}
	w := strings.IndexByte(next, ' ')
	if w < 0 {
		w = len(next)
	}
	w = columns(next[:w])
	if d.held.Carrier == CarrierBare {
		return space && cols+w > 66
	}
	return cols+1+w > 72 || space && cols+w > 66
}

// isDictLine matches a /dev/kmsg dictionary line ("SUBSYSTEM=usb").
func isDictLine(s string) bool {
	eq := strings.IndexByte(s, '=')
	if eq <= 0 {
		return false
	}
	for i := 0; i < eq; i++ {
		if c := s[i]; !(isUpper(c) || isDigit(c) || c == '_') {
			return false
		}
	}
	return true
}

// hold starts holding the record on line n (or, for another program's
// line, the place of one whose continuation lines are dropped).
func (d *Decoder) hold(dl *decodedLine, n int, l string) {
	d.indent, d.last, d.broken = dl.indent, l, false
	if dl.kind == lineNonKernel && !d.programs {
		d.dropped = true
		return
	}
	d.dropped, d.hasHeld = false, true
	d.held, d.escaped = dl.rec, dl.escaped
	d.held.Line = n
	d.parts, d.seps = append(d.parts[:0], dl.rec.Text), append(d.seps[:0], "")
	d.size = len(dl.rec.Text)
	if dl.kind != lineNonKernel {
		d.counts[dl.rec.Carrier]++
	}
}

// take returns the held record with its lines joined once (appending them
// one by one was quadratic in a memcg stats block).
func (d *Decoder) take() Record {
	r := d.held
	d.hasHeld = false // hold overwrites the record
	if len(d.parts) > 1 {
		var b strings.Builder
		b.Grow(d.size)
		for i, p := range d.parts {
			b.WriteString(d.seps[i])
			b.WriteString(p)
		}
		r.Text = b.String()
	}
	clear(d.parts)
	d.parts, d.seps = d.parts[:0], d.seps[:0]
	if d.escaped {
		r.Text = unescape(r.Text)
	}
	return r
}

// banner reads the year from a journalctl banner ("-- Journal begins at
// Thu 2021-06-10 06:17:06 MST, ends at Fri 2021-06-11 20:34:01 MST. --",
// or "-- Logs begin at ..., end at ... --" before systemd 246): the short
// format's dates have none. When the journal spans a new year, the year
// stays unknown.
func (d *Decoder) banner(l string) {
	var years []int
	for i := 0; i+5 <= len(l); i++ {
		if (i == 0 || l[i-1] == ' ') && countDigitsAt(l, i) == 4 && l[i+4] == '-' {
			years = append(years, atoiDigits(l[i:i+4]))
		}
	}
	if len(years) == 2 && years[0] == years[1] {
		d.year = years[0]
	}
}

// parseJSON reads one journalctl -o json entry; kernel is false for
// entries another program logged.
func parseJSON(l string) (r Record, kernel, ok bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(l), &m) != nil {
		return Record{}, false, false
	}
	r.Carrier = CarrierJournalJSON
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
	var transport string
	kernel = json.Unmarshal(m["_TRANSPORT"], &transport) != nil || transport == "kernel"
	if !kernel {
		if json.Unmarshal(m["SYSLOG_IDENTIFIER"], &r.Program) != nil || r.Program == "" {
			r.Program = "?"
		}
	}
	// journald keeps a multi-line message in one entry.
	return r, kernel, true
}

func jsonInt(raw json.RawMessage) (int64, bool) {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}
