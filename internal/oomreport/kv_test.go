package oomreport

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// reKVRef is the regexp eachKV replaces; the fuzz test holds them equal.
var reKVRef = regexp.MustCompile(`([A-Za-z_-]+):\s*(-?\d+)(kB|KB)?`)

type kv struct {
	k string
	n int64
}

func kvByRegexp(s string) []kv {
	var out []kv
	for _, m := range reKVRef.FindAllStringSubmatch(s, -1) {
		n, _ := strconv.ParseInt(m[2], 10, 64)
		out = append(out, kv{m[1], n})
	}
	return out
}

func kvByHand(s string) []kv {
	var out []kv
	eachKV(s, func(k string, n int64) { out = append(out, kv{k, n}) })
	return out
}

func FuzzEachKV(f *testing.F) {
	for _, s := range []string{
		"total-vm:6964kB, anon-rss:5188kB, file-rss:824kB, shmem-rss:0kB, UID:0 pgtables:56kB oom_score_adj:0",
		"active_anon:1880234 inactive_anon:12 isolated_anon:0\\n free:21433 free_pcp:0",
		"cache:0KB rss:1024KB rss_huge:0KB",
		"a:1kB-x:2", "a:-b:2", "x: :3 y:-", "::1", "oom_score_adj:-997",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, got := kvByRegexp(s), kvByHand(s)
		if len(want) != len(got) {
			t.Fatalf("%q: regexp %v, eachKV %v", s, want, got)
		}
		for i := range want {
			if want[i] != got[i] {
				t.Fatalf("%q: regexp %v, eachKV %v", s, want, got)
			}
		}
	})
}

// The comm ends at the first ")" before " total-vm:", " vsz:" or the end
// of the line; without one, at the first ")".
var (
	reKilledStrict = regexp.MustCompile(`Killed process (\d+) \((.*?)\)( total-vm:.*| vsz:.*|)$`)
	reKilledRef    = regexp.MustCompile(`Killed process (\d+) \((.*?)\)(.*)$`)
)

func FuzzSplitKilled(f *testing.F) {
	for _, s := range []string{
		"Out of memory: Killed process 2182350 (tail) total-vm:7754168kB, anon-rss:7532364kB, UID:0 pgtables:14792kB oom_score_adj:0",
		"Memory cgroup out of memory: Killed process 1 (a) b) rest",
		"Killed process x (y) Killed process 2 (z)", "Killed process 3 (", "Killed process 4 (q)",
		"Killed process 5 ((sd-pam)) total-vm:1kB", "Killed process 6 (Web Content) total-vm:1kB",
		"Killed process 7 (a) b) vsz:1kB, Killed process 8 (c)", "Killed process 9 (x)y) z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsRune(s, '\n') {
			// The regexp's "." stops at a newline; a kill line has none.
			return
		}
		m := reKilledStrict.FindStringSubmatch(s)
		if m == nil {
			m = reKilledRef.FindStringSubmatch(s)
		}
		pid, comm, rest, ok := splitKilled(s)
		if ok != (m != nil) {
			t.Fatalf("%q: regexp %v, splitKilled ok=%v", s, m, ok)
		}
		if ok && (strconv.Itoa(pid) != m[1] && atoi(m[1]) != pid || comm != m[2] || rest != m[3]) {
			t.Fatalf("%q: regexp %q, splitKilled %d %q %q", s, m, pid, comm, rest)
		}
	})
}
