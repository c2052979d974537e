package oomreport

import (
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The regexps scan.go replaces; each fuzz test holds a scanner equal to one.
var (
	reInvokedRef = regexp.MustCompile(`^(.*) invoked oom-killer: (.*)$`)
	reCPURef     = regexp.MustCompile(`^CPU: \d+ (?:UID: \d+ )?PID: (\d+) Comm: .*?(?:Not tainted|Tainted: [A-Z ]*?) (\S+) #`)
	reCounterRef = regexp.MustCompile(`^(memory|swap|memory\+swap|kmem): usage (\d+)kB, limit (\d+)kB, failcnt (\d+)`)
	reKillRef    = regexp.MustCompile(`Kill process (\d+) \((.*?)\) score (\d+) or sacrifice child`)
	reReapedRef  = regexp.MustCompile(`^oom_reaper: reaped process (\d+) \((.*?)\),(.*)$`)
	reTaskInRef  = regexp.MustCompile(`^Task in (\S+) killed as a result of limit of (\S+)`)
	reGroupRef   = regexp.MustCompile(`^Tasks in (\S+) are going to be killed due to memory\.oom\.group set`)
)

// scanSeeds are real lines plus near misses for every scanner.
var scanSeeds = []string{
	"python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
	"a invoked oom-killer: b invoked oom-killer: c", "x invoked oom-killer: \ny",
	"CPU: 0 UID: 0 PID: 2738 Comm: python3 Not tainted 6.18.44-fc-v669 #1 PREEMPT(none) ",
	"CPU: 1 PID: 4242 Comm: tail Tainted: G        W  O      6.1.132-147.221.amzn2023.x86_64 #1",
	"CPU: 1 PID: 4 Comm: a Tainted: G  Not tainted 5.4 #1", "CPU: 1 UID: x PID: 2 Comm: a Not tainted k #",
	"CPU: 3 PID: 9 Comm: Tainted Tainted: Tainted: G 6 #", "CPU: 1 PID: 2 Comm: a\nNot tainted k #1",
	"memory: usage 20480kB, limit 20480kB, failcnt 143", "memory+swap: usage 1kB, limit 2kB, failcnt 0",
	"kmem: usage 1kB, limit 2kB, failcnt ", "swapx: usage 1kB, limit 2kB, failcnt 3",
	"Memory cgroup out of memory: Kill process 1234 (stress) score 999 or sacrifice child",
	"Kill process 1 (a) b) score 2 or sacrifice child", "Kill process 1 (a\n) score 2 or sacrifice child",
	"oom_reaper: reaped process 2182350 (tail), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB",
	"oom_reaper: reaped process 1 (a),b),c", "oom_reaper: reaped process 1 (a),\n",
	"Task in /kubepods/pod1/c1 killed as a result of limit of /kubepods/pod1",
	"Task in /a\tkilled as a result of limit of /b", "Task in  killed as a result of limit of /b",
	"Tasks in /kubepods.slice/x.scope are going to be killed due to memory.oom.group set",
	"Tasks in /a are going to be killed due to memory.oom.group setting",
}

// scanners pairs each scanner with its regexp; groups is nil for a
// scanner that only reports whether the regexp matches.
var scanners = []struct {
	re   *regexp.Regexp
	scan func(string) (groups []string, ok bool)
}{
	{reInvokedRef, func(s string) ([]string, bool) { a, b, ok := splitInvoked(s); return []string{a, b}, ok }},
	{reCPURef, func(s string) ([]string, bool) { a, b, ok := splitCPU(s); return []string{a, b}, ok }},
	{reCounterRef, func(s string) ([]string, bool) {
		a, b, c, d, ok := splitCounter(s)
		return []string{a, b, c, d}, ok
	}},
	{reKillRef, func(s string) ([]string, bool) { a, b, c, ok := splitSacrifice(s); return []string{a, b, c}, ok }},
	{reReapedRef, func(s string) ([]string, bool) { a, b, c, ok := splitReaped(s); return []string{a, b, c}, ok }},
	{reTaskInRef, func(s string) ([]string, bool) { a, b, ok := splitTaskIn(s); return []string{a, b}, ok }},
	{reGroupRef, func(s string) ([]string, bool) { a, ok := cgroupOfGroupKill(s); return []string{a}, ok }},
}

// FuzzScanners runs every scanner on each input: most inputs miss all of
// them, and a near miss for one is often a seed for another.
func FuzzScanners(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, sc := range scanners {
			got, ok := sc.scan(s)
			checkGroups(t, s, sc.re, ok, got)
		}
	})
}

// checkGroups fails unless the scanner matched exactly when re does, with
// the same submatches.
func checkGroups(t *testing.T, s string, re *regexp.Regexp, ok bool, got []string) {
	t.Helper()
	m := re.FindStringSubmatch(s)
	if ok != (m != nil) {
		t.Fatalf("%q: %v: regexp %q, scanner ok=%v %q", s, re, m, ok, got)
	}
	if ok && got != nil && !slices.Equal(m[1:], got) {
		t.Fatalf("%q: regexp %q, scanner %q", s, m[1:], got)
	}
}

// isStatLineRef is the strings.Fields version isStatLine replaced.
func isStatLineRef(s string) bool {
	f := strings.Fields(s)
	if len(f) != 2 {
		return false
	}
	for _, c := range f[1] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func FuzzIsStatLine(f *testing.F) {
	for _, s := range []string{"anon 5775360", " anon\t1 ", "a 1 2", "a", "a x", "a\u00a01", "a\u00851", "\xff 1", "a 1\v"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isStatLine(s), isStatLineRef(s); got != want {
			t.Fatalf("%q: isStatLine %v, strings.Fields version %v", s, got, want)
		}
	})
}

func FuzzAppendFields(f *testing.F) {
	for _, s := range []string{"  a b\tc\n", "", " ", "a\u00a0b c", "\xff x", "a\vb\fc\rd", "1 2 3 4 5"} {
		f.Add(s, 2)
	}
	f.Fuzz(func(t *testing.T, s string, limit int) {
		limit = limit%8 - 1 // -1 (no limit) to 6
		want := strings.Fields(s)
		if limit >= 0 && len(want) > limit {
			want = want[:limit]
		}
		if got := appendFields([]string{"keep"}, s, limit); !slices.Equal(got, append([]string{"keep"}, want...)) {
			t.Fatalf("%q limit %d: appendFields %q, strings.Fields %q", s, limit, got[1:], want)
		}
	})
}

func FuzzParseInt(f *testing.F) {
	for _, s := range []string{"0", "-997", "+5", "-", "+", "", "12a", "999999999999999999", "9223372036854775807",
		"9223372036854775808", "-9223372036854775809", " 1", "1_000", "0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := strconv.ParseInt(s, 10, 64)
		if got := parseInt(s); got != want {
			t.Fatalf("%q: parseInt %d, strconv.ParseInt %d", s, got, want)
		}
	})
}

// summaryRef is the map-based "oom-kill:" handling summary replaced.
func summaryRef(rep *Report, s string) {
	kv := map[string]string{}
	eachSummaryKV(s, func(k, v string) { kv[k] = v })
	rep.Constraint = kv["constraint"]
	if v, ok := kv["nodemask"]; ok {
		rep.Nodemask = v
	}
	rep.Cpuset = kv["cpuset"]
	rep.MemsAllowed = kv["mems_allowed"]
	if _, ok := kv["global_oom"]; ok {
		rep.OOMMemcg = "global_oom"
	} else {
		rep.OOMMemcg = kv["oom_memcg"]
	}
	rep.TaskMemcg = kv["task_memcg"]
}

func FuzzSummary(f *testing.F) {
	f.Add("oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/a,b,task_memcg=/a,task=x,pid=1,uid=0")
	f.Add("oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),global_oom,task_memcg=/,global_oom=1,nodemask,cpuset=a,cpuset=b")
	f.Fuzz(func(t *testing.T, s string) {
		prev := Report{Nodemask: "0-1", OOMMemcg: "/old", TaskMemcg: "/old", Cpuset: "x"}
		want, got := prev, prev
		summaryRef(&want, s)
		a := &Assembler{cur: &got}
		a.summary(s)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: summary %+v, map version %+v", s, got, want)
		}
	})
}

func TestScanSeeds(t *testing.T) {
	// The seeds must exercise both outcomes of every scanner.
	for _, sc := range scanners {
		hit, miss := false, false
		for _, s := range scanSeeds {
			if sc.re.MatchString(s) {
				hit = true
			} else {
				miss = true
			}
		}
		if !hit || !miss {
			t.Errorf("%v: seeds hit=%v miss=%v", sc.re, hit, miss)
		}
	}
}
