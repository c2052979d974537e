package oomreport

import (
	"strconv"
	"strings"
)

func atoi(s string) int     { return int(parseInt(strings.TrimSpace(s))) }
func atoi64(s string) int64 { return parseInt(strings.TrimSpace(s)) }

// parseInt is strconv.ParseInt(s, 10, 64) with the error dropped, as the
// parser has always used it (0 for a non-number, the limit on overflow),
// with a fast path for the short decimals kernel lines are made of: task
// rows and kill lines are a dozen numbers each.
func parseInt(s string) int64 {
	if len(s) == 0 || len(s) > 18 {
		n, _ := strconv.ParseInt(s, 10, 64)
		return n
	}
	digits := s
	if s[0] == '-' || s[0] == '+' {
		digits = s[1:]
	}
	var n int64
	for i := 0; i < len(digits); i++ {
		d := digits[i] - '0'
		if d > 9 {
			return 0
		}
		n = n*10 + int64(d)
	}
	if len(digits) == 0 {
		return 0
	}
	if s[0] == '-' {
		return -n
	}
	return n
}

// parseInvoked handles "gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0"
// and the 4.19 form with ", nodemask=0-1" inserted; keys are matched by name.
func parseInvoked(comm, rest string, inv *Invoker, r *Report) {
	inv.Comm = comm
	eachTopLevel(rest, func(kv string) {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		switch k {
		case "gfp_mask":
			inv.GFPMask = v
		case "order":
			n := atoi(v)
			inv.Order = &n
		case "oom_score_adj":
			n := atoi(v)
			inv.OOMScoreAdj = &n
		case "nodemask":
			r.Nodemask = v
		}
	})
}

// eachTopLevel calls fn for each comma-separated part of s, not splitting
// inside parentheses, because the gfp flag list
// "(GFP_HIGHUSER_MOVABLE|__GFP_COMP)" is inside one value.
func eachTopLevel(s string, fn func(string)) {
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth <= 0 {
				fn(s[start:i])
				start = i + 1
			}
		}
	}
	fn(s[start:])
}

// appendFields appends to dst the fields of s as strings.Fields splits
// them, at most limit of them (all when limit < 0). ASCII text is split
// by hand into dst, so a caller with a scratch slice allocates nothing;
// task rows and stat lines are split for every line of a report.
func appendFields(dst []string, s string, limit int) []string {
	if !isASCII(s) {
		f := strings.Fields(s)
		if limit >= 0 && len(f) > limit {
			f = f[:limit]
		}
		return append(dst, f...)
	}
	for i, n := 0, 0; i < len(s) && n != limit; n++ {
		for i < len(s) && isASCIISpace(s[i]) {
			i++
		}
		if i == len(s) {
			break
		}
		j := i
		for j < len(s) && !isASCIISpace(s[j]) {
			j++
		}
		dst = append(dst, s[i:j])
		i = j
	}
	return dst
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func isASCIISpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// summaryKeys are the keys of the 5.0+ "oom-kill:" line. Values are cgroup
// paths that may themselves contain commas, so a value runs until the next
// ",key=" of a known key.
var summaryKeys = []string{"constraint", "nodemask", "cpuset", "mems_allowed", "oom_memcg", "global_oom", "task_memcg", "task", "pid", "uid"}

// nextSummaryKey returns the index of the first comma in rest that starts
// a known key (",key=", ",key," or a final ",key"), or -1: one pass over
// the commas, where trying every separator was the parser's top cost.
func nextSummaryKey(rest string) int {
	for i := strings.IndexByte(rest, ','); i >= 0; {
		t := rest[i+1:]
		for _, k := range summaryKeys {
			if t != "" && t[0] == k[0] && strings.HasPrefix(t, k) && (len(t) == len(k) || t[len(k)] == '=' || t[len(k)] == ',') {
				return i
			}
		}
		j := strings.IndexByte(t, ',')
		if j < 0 {
			return -1
		}
		i += 1 + j
	}
	return -1
}

// eachSummaryKV calls fn for each key=value of an "oom-kill:" line, in
// order; a bare flag such as global_oom comes with an empty value.
func eachSummaryKV(s string, fn func(key, value string)) {
	s = strings.TrimPrefix(s, "oom-kill:")
	for s != "" {
		key, rest, hasEq := strings.Cut(s, "=")
		if !hasEq || strings.Contains(key, ",") {
			flag, after, _ := strings.Cut(s, ",")
			fn(flag, "")
			s = after
			continue
		}
		next := nextSummaryKey(rest)
		if next < 0 {
			fn(key, rest)
			return
		}
		fn(key, rest[:next])
		s = rest[next+1:]
	}
}

// parseKillFields reads "total-vm:6964kB, anon-rss:5188kB, ... UID:0
// pgtables:56kB oom_score_adj:0" by field name.
func parseKillFields(s string, v *Victim) {
	eachKV(s, func(key string, n int64) {
		switch key {
		case "total-vm":
			v.TotalVMKB, v.has = n, v.has|victimHasTotalVM
		case "anon-rss":
			v.AnonRSSKB, v.has = n, v.has|victimHasAnon
		case "file-rss":
			v.FileRSSKB, v.has = n, v.has|victimHasFile
		case "shmem-rss":
			v.ShmemRSSKB, v.has = n, v.has|victimHasShmem
		case "UID":
			v.UID, v.has = int(n), v.has|victimHasUID
		case "pgtables":
			v.PgtablesKB, v.has = n, v.has|victimHasPgtables
		case "oom_score_adj":
			v.OOMScoreAdj, v.has = int(n), v.has|victimHasAdj
		}
	})
}

// parseStats reads memcg stats in either layout: v2 "anon 5775360" lines
// (bytes) or v1 "cache:0KB rss:1024KB" pairs.
func parseStats(s string, into map[string]int64) {
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.Contains(line, ":") {
			eachKV(line, func(key string, n int64) { into[key] = n })
			continue
		}
		// "name value": cut by hand, memory.stat has ~60 lines a report.
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		val = strings.TrimLeft(val, " ")
		if strings.ContainsAny(val, " \t") {
			continue
		}
		if n, err := strconv.ParseInt(val, 10, 64); err == nil {
			into[name] = n
		}
	}
}

// taskColumns maps a "Tasks state" header to field setters by name, so
// both the pre-6.8 and the 6.8+ layouts (rss_anon rss_file rss_shmem) and
// the pre-4.19 one (nr_ptes nr_pmds) parse.
func taskColumns(header string) []string {
	h := strings.ReplaceAll(header, "[  pid  ]", "pid")
	h = strings.ReplaceAll(h, "[ pid ]", "pid")
	return strings.Fields(h)
}

// parseTaskRow parses one row by the header's columns; scratch holds the
// row's fields between calls.
func parseTaskRow(cols []string, line string, scratch *[]string) (Task, bool) {
	pid, rest, ok := splitRow(line)
	if !ok || len(cols) < 2 {
		return Task{}, false
	}
	*scratch = appendFields((*scratch)[:0], rest, -1)
	fields := *scratch
	// name is last and may hold spaces: cols[1:len-1] are numeric.
	if len(fields) < len(cols)-1 {
		return Task{}, false
	}
	t := Task{PID: pid, RSSAnon: -1, RSSFile: -1, RSSShmem: -1}
	num := cols[1 : len(cols)-1]
	for i, c := range num {
		n := atoi64(fields[i])
		switch c {
		case "uid":
			t.UID, t.has = int(n), t.has|taskHasUID
		case "tgid":
			t.TGID, t.has = int(n), t.has|taskHasTGID
		case "total_vm":
			t.TotalVM, t.has = n, t.has|taskHasTotalVM
		case "rss":
			t.RSS, t.has = n, t.has|taskHasRSS
		case "rss_anon":
			t.RSSAnon, t.has = n, t.has|taskHasRSSAnon
		case "rss_file":
			t.RSSFile, t.has = n, t.has|taskHasRSSFile
		case "rss_shmem":
			t.RSSShmem, t.has = n, t.has|taskHasRSSShmem
		case "pgtables_bytes":
			t.PgtablesBytes, t.has = n, t.has|taskHasPgtables
		case "nr_ptes":
			t.PgtablesBytes, t.has = n*4096, t.has|taskHasPgtables
		case "swapents":
			t.Swapents, t.has = n, t.has|taskHasSwapents
		case "oom_score_adj":
			t.OOMScoreAdj, t.has = int(n), t.has|taskHasAdj
		}
	}
	t.Name = strings.Join(fields[len(num):], " ")
	return t, true
}

// splitRow splits a task table row "[  pid  ] rest" by hand: it runs for
// every row of every report, where a regexp was the parser's top cost.
func splitRow(line string) (pid int, rest string, ok bool) {
	if !strings.HasPrefix(line, "[") {
		return 0, "", false
	}
	end := strings.IndexByte(line, ']')
	if end < 0 {
		return 0, "", false
	}
	num := strings.TrimSpace(line[1:end])
	if num == "" {
		return 0, "", false
	}
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return 0, "", false
		}
	}
	rest = line[end+1:]
	if rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
		return 0, "", false
	}
	return atoi(num), strings.TrimLeft(rest, " \t"), true
}

// eachKV calls fn for every "key:value" pair in s, as the regexp
// ([A-Za-z_-]+):\s*(-?\d+)(kB|KB)? would find them, without a regexp: kill
// lines, Mem-Info and v1 memcg stats are made of these, and the regexp was
// a fifth of the parse.
func eachKV(s string, fn func(key string, n int64)) {
	last := 0
	for i := strings.IndexByte(s, ':'); i >= 0; {
		j := i
		for j > last && isKeyByte(s[j-1]) {
			j--
		}
		k := i + 1
		for k < len(s) && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n' || s[k] == '\r' || s[k] == '\f') {
			k++
		}
		start := k
		if k < len(s) && s[k] == '-' {
			k++
		}
		digits := k
		for k < len(s) && s[k] >= '0' && s[k] <= '9' {
			k++
		}
		if j < i && k > digits {
			fn(s[j:i], parseInt(s[start:k]))
			if strings.HasPrefix(s[k:], "kB") || strings.HasPrefix(s[k:], "KB") {
				k += 2
			}
			last = k
		}
		next := strings.IndexByte(s[i+1:], ':')
		if next < 0 {
			return
		}
		i += 1 + next
		if i < last {
			// A colon inside the value just matched cannot start a key.
			next := strings.IndexByte(s[last:], ':')
			if next < 0 {
				return
			}
			i = last + next
		}
	}
}

func isKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '-'
}

// splitKilled reads "... Killed process PID (COMM)REST" by hand, as the
// regexps in FuzzSplitKilled would: it runs on every kill line, and a
// group kill prints one per member. A comm may hold spaces and
// parentheses ("(sd-pam)", "Web Content"), so the comm ends at the first
// ")" that " total-vm:" (2.6.x+: " vsz:") or the end of the line follows,
// and only without one at the first ")".
func splitKilled(text string) (pid int, comm, rest string, ok bool) {
	if pid, comm, rest, ok = scanKilled(text, true); ok {
		return pid, comm, rest, ok
	}
	return scanKilled(text, false)
}

func scanKilled(text string, strict bool) (pid int, comm, rest string, ok bool) {
	const marker = "Killed process "
	for off := 0; ; {
		i := strings.Index(text[off:], marker)
		if i < 0 {
			return 0, "", "", false
		}
		s := text[off+i+len(marker):]
		j := 0
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j > 0 && strings.HasPrefix(s[j:], " (") {
			c := s[j+2:]
			for k := strings.IndexByte(c, ')'); k >= 0; {
				after := c[k+1:]
				if !strict || after == "" || strings.HasPrefix(after, " total-vm:") || strings.HasPrefix(after, " vsz:") {
					return atoi(s[:j]), c[:k], after, true
				}
				next := strings.IndexByte(after, ')')
				if next < 0 {
					break
				}
				k += 1 + next
			}
		}
		off += i + 1
	}
}
