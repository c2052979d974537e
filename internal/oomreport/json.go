package oomreport

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends r as encoding/json would marshal it (same field
// order, omitempty/omitzero, HTML-safe string escaping, sorted map keys,
// Task's and Victim's MarshalJSON), without reflection: encoding/json was a fifth of `podwarden events -o
// json` on report-dense logs. json_test.go holds the two equal on every
// golden report and on fuzzed ones, so a field added to Report must be
// added here too.
func (r *Report) AppendJSON(b []byte) ([]byte, error) {
	if math.IsInf(r.Monotonic, 0) || math.IsNaN(r.Monotonic) {
		return b, fmt.Errorf("encoding report: monotonic_s %v is not a JSON number", r.Monotonic)
	}
	// One leading comma for every field: stripped at the end, since
	// which field comes first depends on what the log gave.
	start := len(b)
	b = appendStringField(append(b, '{'), `,"killer":`, r.Killer)
	if !r.Time.IsZero() {
		t, err := r.Time.MarshalJSON()
		if err != nil {
			return b, fmt.Errorf("encoding report time: %w", err)
		}
		b = append(append(b, `,"time":`...), t...)
	}
	if r.Stamp != "" {
		b = appendStringField(b, `,"stamp":`, r.Stamp)
	}
	// omitzero, which takes -0 for zero too.
	if r.Monotonic != 0 {
		b = appendFloat(append(b, `,"monotonic_s":`...), r.Monotonic)
	}
	if r.Line != 0 {
		b = appendIntField(b, `,"line":`, int64(r.Line))
	}
	b = appendStringField(b, `,"scope":`, string(r.Kind))
	b = appendOptString(b, `,"kernel":`, r.Kernel)
	b = appendOptString(b, `,"constraint":`, r.Constraint)
	b = appendOptString(b, `,"nodemask":`, r.Nodemask)
	b = appendOptString(b, `,"cpuset":`, r.Cpuset)
	b = appendOptString(b, `,"mems_allowed":`, r.MemsAllowed)
	b = appendOptString(b, `,"oom_memcg":`, r.OOMMemcg)
	b = appendOptString(b, `,"task_memcg":`, r.TaskMemcg)
	if r.Invoker != (Invoker{}) {
		b = r.Invoker.appendJSON(append(b, `,"invoker":`...))
	}
	if r.Memcg != nil {
		b = r.Memcg.appendJSON(append(b, `,"memcg":`...))
	}
	if len(r.MemInfo) > 0 {
		b = appendIntMap(append(b, `,"mem_info":`...), r.MemInfo)
	}
	if len(r.Tasks) > 0 {
		b = append(b, `,"tasks":[`...)
		for i := range r.Tasks {
			if i > 0 {
				b = append(b, ',')
			}
			b = r.Tasks[i].appendJSON(b)
		}
		b = append(b, ']')
	}
	b = append(b, `,"victims":`...)
	if r.Victims == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range r.Victims {
			if i > 0 {
				b = append(b, ',')
			}
			b = r.Victims[i].appendJSON(b)
		}
		b = append(b, ']')
	}
	b = appendOptString(b, `,"group_kill_cgroup":`, r.GroupKillCgroup)
	if len(r.Reaped) > 0 {
		b = append(b, `,"reaped":[`...)
		for i, rp := range r.Reaped {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendIntField(append(b, '{'), `"pid":`, int64(rp.PID))
			b = appendStringField(b, `,"comm":`, rp.Comm)
			b = appendIntField(b, `,"anon_rss_kb":`, rp.AnonRSSKB)
			b = appendIntField(b, `,"file_rss_kb":`, rp.FileRSSKB)
			b = appendIntField(b, `,"shmem_rss_kb":`, rp.ShmemRSSKB)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = appendOptString(b, `,"pod_uid":`, r.PodUID)
	b = appendOptString(b, `,"pod_namespace":`, r.PodNamespace)
	b = appendOptString(b, `,"pod_name":`, r.PodName)
	b = appendOptString(b, `,"container_id":`, r.ContainerID)
	b = appendOptString(b, `,"reason":`, r.Reason)
	b = appendStrings(append(b, `,"diagnosis":{"codes":`...), r.Diagnosis.Codes)
	b = appendStringField(b, `,"summary":`, r.Diagnosis.Summary)
	b = append(b, `},"incomplete":`...)
	b = strconv.AppendBool(b, r.Incomplete)
	if len(r.Missing) > 0 {
		b = appendStrings(append(b, `,"missing":`...), r.Missing)
	}
	b = append(b, '}')
	// Drop the comma after the opening brace.
	return append(b[:start+1], b[start+2:]...), nil
}

func (inv *Invoker) appendJSON(b []byte) []byte {
	start := len(b)
	b = append(b, '{')
	b = appendOptString(b, `,"comm":`, inv.Comm)
	if inv.PID != 0 {
		b = appendIntField(b, `,"pid":`, int64(inv.PID))
	}
	b = appendOptString(b, `,"gfp_mask":`, inv.GFPMask)
	if inv.Order != nil {
		b = appendIntField(b, `,"order":`, int64(*inv.Order))
	}
	if inv.OOMScoreAdj != nil {
		b = appendIntField(b, `,"oom_score_adj":`, int64(*inv.OOMScoreAdj))
	}
	if len(b) == start+1 {
		return append(b, '}')
	}
	b = append(b, '}')
	return append(b[:start+1], b[start+2:]...)
}

func (m *Memcg) appendJSON(b []byte) []byte {
	b = appendIntField(append(b, '{'), `"usage_kb":`, m.UsageKB)
	b = appendIntField(b, `,"limit_kb":`, m.LimitKB)
	b = appendIntField(b, `,"failcnt":`, m.Failcnt)
	for _, c := range []struct {
		key string
		c   *Counter
	}{{`,"swap":`, m.Swap}, {`,"memory_swap":`, m.MemSwap}, {`,"kmem":`, m.Kmem}} {
		if c.c != nil {
			b = appendIntField(append(b, c.key...), `{"usage_kb":`, c.c.UsageKB)
			b = appendIntField(b, `,"limit_kb":`, c.c.LimitKB)
			b = appendIntField(b, `,"failcnt":`, c.c.Failcnt)
			b = append(b, '}')
		}
	}
	if m.StatsFor != "" {
		b = appendStringField(b, `,"stats_for":`, m.StatsFor)
	}
	if len(m.Stats) > 0 {
		b = appendIntMap(append(b, `,"stats":`...), m.Stats)
	}
	return append(b, '}')
}

// Columns of the task table, for Task.has.
const (
	taskHasUID uint16 = 1 << iota
	taskHasTGID
	taskHasTotalVM
	taskHasRSS
	taskHasRSSAnon
	taskHasRSSFile
	taskHasRSSShmem
	taskHasPgtables
	taskHasSwapents
	taskHasAdj
)

// MarshalJSON writes only the columns the table's layout printed:
// encoding/json has no tag for "absent unless the kernel printed it".
func (t Task) MarshalJSON() ([]byte, error) { return t.appendJSON(nil), nil }

func (t *Task) appendJSON(b []byte) []byte {
	b = appendIntField(append(b, '{'), `"pid":`, int64(t.PID))
	for _, c := range []struct {
		bit uint16
		key string
		n   int64
	}{
		{taskHasUID, `,"uid":`, int64(t.UID)}, {taskHasTGID, `,"tgid":`, int64(t.TGID)},
		{taskHasTotalVM, `,"total_vm":`, t.TotalVM}, {taskHasRSS, `,"rss":`, t.RSS},
		{taskHasRSSAnon, `,"rss_anon":`, t.RSSAnon}, {taskHasRSSFile, `,"rss_file":`, t.RSSFile},
		{taskHasRSSShmem, `,"rss_shmem":`, t.RSSShmem}, {taskHasPgtables, `,"pgtables_bytes":`, t.PgtablesBytes},
		{taskHasSwapents, `,"swapents":`, t.Swapents}, {taskHasAdj, `,"oom_score_adj":`, int64(t.OOMScoreAdj)},
	} {
		if t.has&c.bit != 0 {
			b = appendIntField(b, c.key, c.n)
		}
	}
	b = appendStringField(b, `,"name":`, t.Name)
	return append(b, '}')
}

// Fields of a kill line, for Victim.has.
const (
	victimHasUID uint8 = 1 << iota
	victimHasTotalVM
	victimHasAnon
	victimHasFile
	victimHasShmem
	victimHasPgtables
	victimHasAdj
	victimHasRSS
)

// MarshalJSON writes only the fields the input printed.
func (v Victim) MarshalJSON() ([]byte, error) { return v.appendJSON(nil), nil }

func (v *Victim) appendJSON(b []byte) []byte {
	b = appendIntField(append(b, '{'), `"pid":`, int64(v.PID))
	b = appendStringField(b, `,"comm":`, v.Comm)
	for _, c := range []struct {
		bit uint8
		key string
		n   int64
	}{
		{victimHasUID, `,"uid":`, int64(v.UID)}, {victimHasTotalVM, `,"total_vm_kb":`, v.TotalVMKB},
		{victimHasAnon, `,"anon_rss_kb":`, v.AnonRSSKB}, {victimHasFile, `,"file_rss_kb":`, v.FileRSSKB},
		{victimHasShmem, `,"shmem_rss_kb":`, v.ShmemRSSKB}, {victimHasPgtables, `,"pgtables_kb":`, v.PgtablesKB},
		{victimHasAdj, `,"oom_score_adj":`, int64(v.OOMScoreAdj)}, {victimHasRSS, `,"rss_kb":`, v.RSSKB},
	} {
		if v.has&c.bit != 0 {
			b = appendIntField(b, c.key, c.n)
		}
	}
	if len(v.Signals) > 0 {
		b = appendStrings(append(b, `,"signals":`...), v.Signals)
	}
	b = appendOptString(b, `,"cgroup":`, v.Cgroup)
	b = appendOptString(b, `,"pod_uid":`, v.PodUID)
	b = appendOptString(b, `,"pod_namespace":`, v.PodNamespace)
	b = appendOptString(b, `,"pod_name":`, v.PodName)
	b = appendOptString(b, `,"container_id":`, v.ContainerID)
	if v.GroupMember {
		b = append(b, `,"group_member":true`...)
	}
	return append(b, '}')
}

// appendOptString writes an omitempty string field.
func appendOptString(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendStringField(b, key, s)
}

func appendIntField(b []byte, key string, n int64) []byte {
	return strconv.AppendInt(append(b, key...), n, 10)
}

func appendStringField(b []byte, key, s string) []byte {
	return appendString(append(b, key...), s)
}

// appendIntMap writes m with its keys sorted, as encoding/json does.
func appendIntMap(b []byte, m map[string]int64) []byte {
	// Room for cgroup v2's ~60 memory.stat keys without a heap slice.
	keys := make([]string, 0, 64)
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(appendString(b, k), ':')
		b = strconv.AppendInt(b, m[k], 10)
	}
	return append(b, '}')
}

// appendStrings writes a nil slice as null and an empty one as [].
func appendStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendFloat formats f like encoding/json: ES6 number formatting, with
// exponents only outside [1e-6, 1e21) and not padded to two digits.
func appendFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// jsonSafe marks the ASCII bytes encoding/json copies as they are; bytes
// from 0x80 up take the UTF-8 path.
var jsonSafe = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendString quotes s as encoding/json does with HTML escaping on:
// control bytes, <, > and & as \u00XX, invalid UTF-8 as \ufffd, and the
// JavaScript line separators U+2028/U+2029 escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if jsonSafe[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
