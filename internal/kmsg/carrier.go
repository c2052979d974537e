package kmsg

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Carrier names the wrapping a kernel message came in: what a tool or a
// person put around the kernel's text. Each line is looked at on its own,
// since files mix them (a kern.log with raw dmesg pasted in, a journal
// excerpt in a ticket after a dmesg).
type Carrier uint8

// Carriers the Decoder recognises.
const (
	// CarrierBare is a message with no prefix at all: printk.time=0, a
	// mail quoting only the text, or a line that is not a kernel message.
	CarrierBare Carrier = iota
	// CarrierDmesg is "[  123.456789] text", also with a printk caller id
	// ("[ 37.05][ T9185]"), a "<4>" priority (dmesg -r) or a facility and
	// level (dmesg -x), and journalctl -o short-monotonic.
	CarrierDmesg
	// CarrierDmesgTime is dmesg -T / --time-format ctime: "[Thu Nov 26
	// 21:00:00 2026] text". In a locale other than English the bracket is
	// kept as an opaque Stamp.
	CarrierDmesgTime
	// CarrierSyslog is a syslog file (kern.log, messages) or journalctl's
	// short formats: "Mon DD HH:MM:SS[.frac] [host] [fac.lvl] kernel: text"
	// or the same with an RFC 3339 / ISO 8601 time; the kernel's own
	// "[ts]" may follow.
	CarrierSyslog
	// CarrierKmsg is a saved /dev/kmsg record "prio,seq,usec,flags;text".
	CarrierKmsg
	// CarrierJournalJSON is journalctl -o json, one entry per line.
	CarrierJournalJSON
	numCarriers
)

var carrierNames = [numCarriers]string{"bare", "dmesg", "dmesg -T", "syslog/journal", "kmsg", "journal json"}

func (c Carrier) String() string {
	if c < numCarriers {
		return carrierNames[c]
	}
	return "unknown"
}

// lineKind says what one input line is.
type lineKind uint8

const (
	lineBlank     lineKind = iota
	lineRecord             // a kernel message with a carrier: starts a record
	lineNonKernel          // a syslog/journal line from another program
	lineBare               // no carrier: a bare message, a continuation or a wrap
	lineSkip               // a journal banner ("-- Journal begins ...")
)

// decodedLine is one input line taken apart. Text and Stamp are
// substrings of the line.
type decodedLine struct {
	kind lineKind
	// indent is how far the text (after any quote markers) is indented.
	indent int
	rec    Record // carrier, times, text for lineRecord; text for lineBare
	// escaped marks kmsg text that still holds \xNN escapes.
	escaped bool
}

// stripPaste removes what mail and chat add before a line: ">" quote
// markers (each with one optional space after it) and indentation, and
// returns the rest with its indentation width.
func stripPaste(l string) (string, int) {
	i := 0
	for {
		j := i
		for j < len(l) && (l[j] == ' ' || l[j] == '\t') {
			j++
		}
		if j < len(l) && l[j] == '>' {
			i = j + 1
			if i < len(l) && l[i] == ' ' {
				i++
			}
			continue
		}
		return l[j:], j - i
	}
}

// decodeLine takes line l apart into d; year is the year syslog dates
// without one belong to (0: unknown), and c caches the last wall-clock
// stamp. It fills d in place: a Record is large, and this runs for every
// line of the input.
func decodeLine(d *decodedLine, l string, year int, c *stampCache) {
	// Every path below that makes a record sets all of d.rec.
	d.kind, d.indent, d.escaped = lineBare, 0, false
	if len(l) > 0 && l[0] != ' ' && l[0] != '\t' && l[0] != '>' {
		decodeCarrier(d, l, year, c)
		return
	}
	r, indent := stripPaste(l)
	if r == "" {
		d.kind = lineBlank
		return
	}
	d.indent = indent
	decodeCarrier(d, r, year, c)
}

func decodeCarrier(d *decodedLine, r string, year int, c *stampCache) {
	rec := &d.rec
	switch {
	case r[0] == '[':
		if cutBrackets(rec, r, c) {
			d.kind = lineRecord
			cutShortMonotonicHost(rec)
			return
		}
	case r[0] == '<':
		// "<4>": dmesg -r, /proc/kmsg and syslog on the wire.
		if n := countDigitsAt(r, 1); n > 0 && n < 4 && len(r) > n+2 && r[n+1] == '>' {
			pf := atoiDigits(r[1 : n+1])
			decodeCarrier(d, r[n+2:], year, c)
			switch {
			case d.kind == lineBare:
				d.kind, rec.Carrier = lineRecord, CarrierDmesg
			case d.kind != lineRecord || rec.Carrier == CarrierKmsg:
				return
			}
			rec.Priority, rec.Facility = pf&7, pf>>3
			return
		}
	case r[0] == '{':
		if j, kernel, ok := parseJSON(r); ok {
			*rec = j
			d.kind = lineNonKernel
			if kernel {
				d.kind = lineRecord
			}
			return
		}
	case r[0] == '-':
		if strings.HasPrefix(r, "-- ") && strings.HasSuffix(r, " --") {
			d.kind = lineSkip
			return
		}
	case isDigit(r[0]):
		if cutKmsgHeader(rec, r) {
			d.kind, d.escaped = lineRecord, true
			return
		}
		if t, rest, ok := cutISOTime(r); ok {
			*rec = Record{Time: t}
			syslogLine(d, r, rest)
			return
		}
	case isUpper(r[0]):
		if t, stamp, rest, ok := cutBSDTime(r, year, c); ok {
			*rec = Record{Time: t, Stamp: stamp}
			syslogLine(d, r, rest)
			return
		}
	case r[0] >= 'a' && r[0] <= 'z':
		if rest, ok := cutFacilityLevel(r); ok && rest != "" {
			d.kind = lineRecord
			if rest[0] == '[' && cutBrackets(rec, rest, c) {
				return
			}
			*rec = Record{Carrier: CarrierDmesg, Text: rest}
			return
		}
	}
	d.kind, *rec = lineBare, Record{Carrier: CarrierBare, Text: r}
}

// syslogLine finishes line r into d, whose date (in d.rec) was cut off
// leaving rest: the host, facility and tag, then the kernel's own "[ts]"
// and caller id if printed.
func syslogLine(d *decodedLine, r, rest string) {
	text, prog, ok := cutSyslogTag(rest)
	rec := &d.rec
	if !ok {
		d.kind, *rec = lineBare, Record{Carrier: CarrierBare, Text: r}
		return
	}
	rec.Carrier = CarrierSyslog
	if prog != "" {
		d.kind, rec.Text, rec.Program = lineNonKernel, text, prog
		return
	}
	rec.Text = text
	if len(text) > 0 && text[0] == '[' {
		var m Record
		if cutBrackets(&m, text, nil) {
			rec.Monotonic, rec.Caller, rec.Text = m.Monotonic, m.Caller, m.Text
		}
	}
	d.kind = lineRecord
}

// cutBrackets parses into rec the brackets dmesg puts before a message: a
// seconds.micro time since boot, a printk caller id, a dmesg -T time (in
// any locale, opaque when it is not English), a dmesg -d delta. It fails,
// leaving rec as it was, for brackets that are message text ("[  pid  ]",
// a task row "[ 1234]", "[<ffffffff8171>]", "[ cut here ]"). c may be nil
// when no wall-clock stamp is allowed.
func cutBrackets(rec *Record, l string, c *stampCache) bool {
	end := strings.IndexByte(l, ']')
	if end < 2 || end > 64 {
		return false
	}
	in := l[1:end]
	var mono time.Duration
	switch {
	case parseSeconds(&mono, in):
		*rec = Record{Carrier: CarrierDmesg, Monotonic: mono}
	case isCallerID(in):
		*rec = Record{Carrier: CarrierDmesg, Caller: strings.TrimLeft(in, " ")}
	case c != nil && hasClock(in):
		*rec = Record{Carrier: CarrierDmesgTime}
		if t, ok := c.parse("Mon Jan _2 15:04:05 2006", in, ""); ok {
			rec.Time = t
		} else {
			rec.Stamp = in
		}
	default:
		return false
	}
	text := l[end+1:]
	if rec.Caller == "" {
		// The kernel prints the caller id right after the time; some
		// tools put a space between.
		t := strings.TrimPrefix(text, " ")
		if len(t) > 2 && t[0] == '[' {
			if e := strings.IndexByte(t, ']'); e > 1 && e < 16 && isCallerID(t[1:e]) {
				rec.Caller, text = strings.TrimLeft(t[1:e], " "), t[e+1:]
			}
		}
	}
	if len(text) > 0 && text[0] == ' ' {
		text = text[1:]
	}
	rec.Text = text
	return true
}

// cutShortMonotonicHost removes "host kernel: " after the time of
// journalctl -o short-monotonic ("[  12.345678] node1 kernel: text").
func cutShortMonotonicHost(rec *Record) {
	if rec.Carrier != CarrierDmesg {
		return
	}
	t := rec.Text
	sp := 0
	for sp < len(t) && sp <= 64 && t[sp] != ' ' {
		sp++
	}
	if sp > 0 && sp <= 64 && t[sp-1] != ':' && strings.HasPrefix(t[sp:], " kernel: ") {
		rec.Text = rec.Text[sp+len(" kernel: "):]
		rec.Carrier = CarrierSyslog
	}
}

// parseSeconds reads "  123.456789" (any number of fraction digits, as
// dmesg and journalctl print it) into mono, and accepts "  +0.000123"
// (dmesg -d's delta, which gives no time).
func parseSeconds(mono *time.Duration, s string) bool {
	for len(s) > 0 && s[0] == ' ' {
		s = s[1:]
	}
	delta := false
	if len(s) > 0 && s[0] == '+' {
		s, delta = s[1:], true
	}
	// dmesg -d prints the delta after the time: "[  12.000000 <  0.000123>]".
	if len(s) > 0 && s[len(s)-1] == '>' {
		if i := strings.Index(s, " <"); i > 0 {
			s = s[:i]
		}
	}
	var sec, frac int64
	i := 0
	for i < len(s) && i <= 12 && isDigit(s[i]) {
		sec = sec*10 + int64(s[i]-'0')
		i++
	}
	dot := i
	if dot == 0 || dot > 12 || i == len(s) || s[i] != '.' {
		return false
	}
	for i++; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
		frac = frac*10 + int64(s[i]-'0')
	}
	digits := len(s) - dot - 1
	if digits == 0 || digits > 9 {
		return false
	}
	if !delta {
		*mono = time.Duration(sec)*time.Second + time.Duration(frac*pow10[9-digits])
	}
	return true
}

var pow10 = [...]int64{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000}

// isCallerID matches printk's caller id: "T9185" (a task) or "C1" (a CPU in
// interrupt context), padded with spaces.
func isCallerID(s string) bool {
	s = strings.TrimLeft(s, " ")
	return len(s) >= 2 && (s[0] == 'T' || s[0] == 'C') && countDigitsAt(s, 1) == len(s)-1
}

// hasClock reports whether s holds a time of day "H:MM:SS" or "HH:MM",
// which every locale's dmesg -T and reltime stamp has, while brackets of
// message text do not.
func hasClock(s string) bool {
	for i := strings.IndexByte(s, ':'); i > 0 && i+2 < len(s); {
		if isDigit(s[i-1]) && isDigit(s[i+1]) && isDigit(s[i+2]) {
			return true
		}
		j := strings.IndexByte(s[i+1:], ':')
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

// cutKmsgHeader parses a saved /dev/kmsg record's header
// "prio,seq,usec,flags[,caller=T1,...];" into rec without allocating; rec
// is left as it was when l has none.
func cutKmsgHeader(rec *Record, l string) bool {
	semi := strings.IndexByte(l, ';')
	if semi < 0 || semi > 128 {
		return false
	}
	hdr := l[:semi]
	var f [4]string
	n := 0
	for n < 3 {
		i := strings.IndexByte(hdr, ',')
		if i < 0 {
			break
		}
		f[n], hdr = hdr[:i], hdr[i+1:]
		n++
	}
	if n < 2 {
		return false
	}
	f[n] = hdr
	for _, x := range f[:3] {
		if x == "" || countDigitsAt(x, 0) != len(x) || len(x) > 19 {
			return false
		}
	}
	pf := atoiDigits(f[0])
	*rec = Record{Carrier: CarrierKmsg, Priority: pf & 7, Facility: pf >> 3, Seq: uint64(atoiDigits(f[1])),
		Monotonic: time.Duration(atoiDigits(f[2])) * time.Microsecond, Text: l[semi+1:]}
	if n == 3 {
		flags, rest, _ := strings.Cut(f[3], ",")
		rec.Flags = flags
		for rest != "" {
			var kv string
			kv, rest, _ = strings.Cut(rest, ",")
			if id, ok := strings.CutPrefix(kv, "caller="); ok {
				rec.Caller = id
			}
		}
	}
	return true
}

// cutISOTime parses an RFC 3339 / ISO 8601 time at the start of l
// ("2024-01-05T15:19:27.123456+01:00" from rsyslog, "...-0700" from
// journalctl -o short-iso, "2024-01-05T15:19:27,123456+01:00" from dmesg
// --time-format iso) and returns what follows it.
func cutISOTime(l string) (time.Time, string, bool) {
	if len(l) < 20 || l[4] != '-' || l[7] != '-' || (l[10] != 'T' && l[10] != ' ') || l[13] != ':' {
		return time.Time{}, "", false
	}
	end := strings.IndexByte(l[11:], ' ')
	if end < 0 {
		return time.Time{}, "", false
	}
	stamp := l[:11+end]
	if l[10] == ' ' || strings.IndexByte(stamp, ',') >= 0 {
		b := []byte(stamp)
		b[10] = 'T'
		if i := strings.IndexByte(stamp, ','); i >= 0 {
			b[i] = '.'
		}
		stamp = string(b)
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999-0700"} {
		if t, err := time.Parse(layout, stamp); err == nil {
			return t, l[11+end:], true
		}
	}
	return time.Time{}, "", false
}

// name3 packs a three-letter name into an int, so the month and weekday
// tests on every syslog line compare integers, not strings.
func name3(s string) uint32 { return uint32(s[0])<<16 | uint32(s[1])<<8 | uint32(s[2]) }

func isMonth(s string) bool {
	switch name3(s) {
	case name3("Jan"), name3("Feb"), name3("Mar"), name3("Apr"), name3("May"), name3("Jun"),
		name3("Jul"), name3("Aug"), name3("Sep"), name3("Oct"), name3("Nov"), name3("Dec"):
		return true
	}
	return false
}

func isWeekday(s string) bool {
	switch name3(s) {
	case name3("Mon"), name3("Tue"), name3("Wed"), name3("Thu"), name3("Fri"), name3("Sat"), name3("Sun"):
		return true
	}
	return false
}

// cutBSDTime parses a syslog date "Jan  5 15:19:27" (also with
// ".123456", as journalctl -o short-precise prints it, a weekday before
// it and a year after it, as OpenWrt's logread prints it). Without a year
// in the line or one given, the time is unknown and stamp holds the date
// as printed: giving it this year would be a guess.
func cutBSDTime(l string, year int, c *stampCache) (t time.Time, stamp, rest string, ok bool) {
	s := l
	if len(s) > 4 && s[3] == ' ' && isWeekday(s) {
		s = s[4:]
	}
	if len(s) < 15 || s[3] != ' ' || !isMonth(s) {
		return
	}
	if !(s[4] == ' ' || isDigit(s[4])) || !isDigit(s[5]) || s[6] != ' ' ||
		!isDigit(s[7]) || !isDigit(s[8]) || s[9] != ':' || !isDigit(s[10]) || !isDigit(s[11]) || s[12] != ':' ||
		!isDigit(s[13]) || !isDigit(s[14]) {
		return
	}
	n := 15
	if n < len(s) && s[n] == '.' {
		n += 1 + countDigitsAt(s, n+1)
	}
	stamp, rest = s[:n], s[n:]
	layout := "Jan _2 15:04:05.999999999"
	if len(rest) > 5 && rest[0] == ' ' && countDigitsAt(rest, 1) == 4 && rest[5] == ' ' {
		// "Mon Dec  9 12:04:12 2024 kern.warn kernel: ..."
		return parseBSD(c, stamp+rest[:5], layout+" 2006", rest[5:])
	}
	if year > 0 {
		if t, ok := c.parse(layout+" 2006", stamp, " "+strconv.Itoa(year)); ok {
			return t, "", rest, true
		}
	}
	return time.Time{}, stamp, rest, true
}

func parseBSD(c *stampCache, stamp, layout, rest string) (time.Time, string, string, bool) {
	if t, ok := c.parse(layout, stamp, ""); ok {
		return t, "", rest, true
	}
	return time.Time{}, stamp, rest, true
}

// cutSyslogTag reads what follows a syslog date: an optional host, an
// optional "facility.level" (busybox syslogd) and the tag. prog is the
// tag's program ("earlyoom" of "earlyoom[812]:"), "" when the tag is
// "kernel:"; ok is false when no tag is found, so the line is not syslog
// after all.
func cutSyslogTag(s string) (text, prog string, ok bool) {
	for i := 0; i < 3; i++ {
		if s == "" || s[0] != ' ' {
			return "", "", false
		}
		s = strings.TrimLeft(s, " ")
		tok := s
		if sp := strings.IndexByte(s, ' '); sp >= 0 {
			tok = s[:sp]
		}
		if tok == "" {
			return "", "", false
		}
		if tok == "kernel:" || strings.HasPrefix(tok, "kernel[") && strings.HasSuffix(tok, "]:") {
			return strings.TrimPrefix(s[len(tok):], " "), "", true
		}
		if tok[len(tok)-1] == ':' {
			prog, _, _ := strings.Cut(tok[:len(tok)-1], "[")
			if prog == "" {
				prog = "?"
			}
			return strings.TrimPrefix(s[len(tok):], " "), prog, true
		}
		s = s[len(tok):]
	}
	return "", "", false
}

var facilities = []string{"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
	"authpriv", "ftp", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"}
var levels = []string{"emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"}

// cutFacilityLevel cuts dmesg -x's "kern  :warn  : " off the front of l.
func cutFacilityLevel(l string) (string, bool) {
	fac, rest, ok := strings.Cut(l, ":")
	if !ok || !isName(strings.TrimRight(fac, " "), facilities) {
		return "", false
	}
	lvl, rest, ok := strings.Cut(rest, ":")
	if !ok || !isName(strings.TrimRight(lvl, " "), levels) {
		return "", false
	}
	return strings.TrimPrefix(rest, " "), true
}

func isName(s string, names []string) bool {
	for _, n := range names {
		if s == n {
			return true
		}
	}
	return false
}

// stampCache remembers the last wall-clock stamp parsed: dmesg -T and
// syslog print whole seconds, so runs of lines share one.
type stampCache struct {
	loc           *time.Location
	stamp, suffix string
	t             time.Time
	ok            bool
}

// parse is time.ParseInLocation(layout, stamp+suffix, c.loc), cached on
// the last stamp.
func (c *stampCache) parse(layout, stamp, suffix string) (time.Time, bool) {
	if c == nil {
		return time.Time{}, false
	}
	if stamp == c.stamp && suffix == c.suffix && stamp != "" {
		return c.t, c.ok
	}
	loc := c.loc
	if loc == nil {
		loc = time.Local
	}
	t, err := time.ParseInLocation(layout, stamp+suffix, loc)
	c.stamp, c.suffix, c.t, c.ok = strings.Clone(stamp), suffix, t, err == nil
	return t, err == nil
}

// normalizeSpaces turns no-break spaces (U+00A0, which mail clients put
// in pasted text) into plain ones.
func normalizeSpaces(l string) string {
	if !strings.Contains(l, "\u00a0") {
		return l
	}
	return strings.ReplaceAll(l, "\u00a0", " ")
}

// columns is the width of l on a terminal or in a mail, in characters.
func columns(l string) int {
	for i := 0; i < len(l); i++ {
		if l[i] >= utf8.RuneSelf {
			return utf8.RuneCountInString(l)
		}
	}
	return len(l)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

func countDigitsAt(s string, i int) int {
	n := 0
	for i+n < len(s) && isDigit(s[i+n]) {
		n++
	}
	return n
}

// atoiDigits converts a string of at most 19 digits.
func atoiDigits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// YearlessTime reads a syslog Stamp without a year ("Mar  3 04:12:09")
// as the latest such time in loc that is not after now (plus a day of
// slack for clocks and time zones): a guess, which callers must say they
// made. It fails for other stamps (a dmesg -T stamp in another locale).
func YearlessTime(stamp string, now time.Time, loc *time.Location) (time.Time, bool) {
	if _, _, rest, ok := cutBSDTime(stamp, 0, nil); !ok || rest != "" {
		return time.Time{}, false
	}
	now = now.In(loc)
	for y := now.Year(); y >= now.Year()-1; y-- {
		t, err := time.ParseInLocation("Jan _2 15:04:05.999999999 2006", stamp+" "+strconv.Itoa(y), loc)
		if err != nil {
			return time.Time{}, false
		}
		if !t.After(now.Add(24 * time.Hour)) {
			return t, true
		}
	}
	return time.Time{}, false
}
