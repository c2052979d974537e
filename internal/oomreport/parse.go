package oomreport

import (
	"regexp"
	"strconv"
	"strings"
)

// The kernel's wording, newest first where it changed; see FACTS.md.
var (
	reInvoked = regexp.MustCompile(`^(.*) invoked oom-killer: (.*)$`)
	reCPU     = regexp.MustCompile(`^CPU: \d+ (?:UID: \d+ )?PID: (\d+) Comm: .*?(?:Not tainted|Tainted: [A-Z ]*?) (\S+) #`)
	reCounter = regexp.MustCompile(`^(memory|swap|memory\+swap|kmem): usage (\d+)kB, limit (\d+)kB, failcnt (\d+)`)
	reKilled  = regexp.MustCompile(`Killed process (\d+) \((.*?)\)(.*)$`)
	reKill    = regexp.MustCompile(`Kill process (\d+) \((.*?)\) score (\d+) or sacrifice child`)
	reReaped  = regexp.MustCompile(`^oom_reaper: reaped process (\d+) \((.*?)\),(.*)$`)
	reTaskIn  = regexp.MustCompile(`^Task in (\S+) killed as a result of limit of (\S+)`)
	reGroup   = regexp.MustCompile(`^Tasks in (\S+) are going to be killed due to memory\.oom\.group set`)
	reKV      = regexp.MustCompile(`([A-Za-z_-]+):\s*(-?\d+)(kB|KB)?`)
)

func atoi(s string) int     { v, _ := strconv.Atoi(strings.TrimSpace(s)); return v }
func atoi64(s string) int64 { v, _ := strconv.ParseInt(strings.TrimSpace(s), 10, 64); return v }

// parseInvoked handles "gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0"
// and the 4.19 form with ", nodemask=0-1" inserted; keys are matched by name.
func parseInvoked(comm, rest string, inv *Invoker, r *Report) {
	inv.Comm = comm
	for _, kv := range splitTopLevel(rest) {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		switch k {
		case "gfp_mask":
			inv.GFPMask = v
		case "order":
			inv.Order = atoi(v)
		case "oom_score_adj":
			inv.OOMScoreAdj = atoi(v)
		case "nodemask":
			r.Nodemask = v
		}
	}
}

// splitTopLevel splits on commas outside parentheses, because the gfp
// flag list "(GFP_HIGHUSER_MOVABLE|__GFP_COMP)" is inside one value.
func splitTopLevel(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth <= 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
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
			if strings.HasPrefix(t, k) && (len(t) == len(k) || t[len(k)] == '=' || t[len(k)] == ',') {
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

func parseSummary(s string) map[string]string {
	out := map[string]string{}
	s = strings.TrimPrefix(s, "oom-kill:")
	for s != "" {
		key, rest, hasEq := strings.Cut(s, "=")
		if !hasEq || strings.Contains(key, ",") {
			// A bare flag such as global_oom.
			flag, after, _ := strings.Cut(s, ",")
			out[flag] = ""
			s = after
			continue
		}
		next := nextSummaryKey(rest)
		if next < 0 {
			out[key] = rest
			break
		}
		out[key] = rest[:next]
		s = rest[next+1:]
	}
	return out
}

// parseKillFields reads "total-vm:6964kB, anon-rss:5188kB, ... UID:0
// pgtables:56kB oom_score_adj:0" by field name.
func parseKillFields(s string, v *Victim) {
	for _, m := range reKV.FindAllStringSubmatch(s, -1) {
		n := atoi64(m[2])
		switch m[1] {
		case "total-vm":
			v.TotalVMKB = n
		case "anon-rss":
			v.AnonRSSKB = n
		case "file-rss":
			v.FileRSSKB = n
		case "shmem-rss":
			v.ShmemRSSKB = n
		case "UID":
			v.UID = int(n)
		case "pgtables":
			v.PgtablesKB = n
		case "oom_score_adj":
			v.OOMScoreAdj = int(n)
		}
	}
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
			for _, m := range reKV.FindAllStringSubmatch(line, -1) {
				into[m[1]] = atoi64(m[2])
			}
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

func parseTaskRow(cols []string, line string) (Task, bool) {
	pid, rest, ok := splitRow(line)
	if !ok || len(cols) < 2 {
		return Task{}, false
	}
	fields := strings.Fields(rest)
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
			t.UID = int(n)
		case "tgid":
			t.TGID = int(n)
		case "total_vm":
			t.TotalVM = n
		case "rss":
			t.RSS = n
		case "rss_anon":
			t.RSSAnon = n
		case "rss_file":
			t.RSSFile = n
		case "rss_shmem":
			t.RSSShmem = n
		case "pgtables_bytes":
			t.PgtablesBytes = n
		case "nr_ptes":
			t.PgtablesBytes = n * 4096
		case "swapents":
			t.Swapents = n
		case "oom_score_adj":
			t.OOMScoreAdj = int(n)
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
