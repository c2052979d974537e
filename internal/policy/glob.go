package policy

import (
	"fmt"
	"path"
	"strings"
)

// MatchGlob reports whether a slash-separated path (a cgroup path or an
// executable) matches pattern. A segment "**" matches any number of
// segments, including none; any other segment is a path.Match pattern on
// one segment ("*" never crosses "/"). Leading and trailing slashes are
// ignored, so "kubepods*/**" and "/kubepods*/**" are the same pattern. A
// malformed pattern matches nothing; Parse and Validate reject those.
//
// Matching is dynamic programming over segments, O(pattern × path), so a
// pattern with many "**" cannot blow up the way backtracking would.
func MatchGlob(pattern, p string) bool {
	ps, ss := segments(pattern), segments(p)
	// cur[j]: the pattern segments seen so far match ss[:j].
	cur := make([]bool, len(ss)+1)
	next := make([]bool, len(ss)+1)
	cur[0] = true
	for _, seg := range ps {
		clear(next)
		if seg == "**" {
			reach := false
			for j := range next {
				reach = reach || cur[j]
				next[j] = reach
			}
		} else {
			for j := 1; j <= len(ss); j++ {
				if !cur[j-1] {
					continue
				}
				ok, err := path.Match(seg, ss[j-1])
				if err != nil {
					return false
				}
				next[j] = ok
			}
		}
		cur, next = next, cur
	}
	return cur[len(ss)]
}

func segments(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// checkGlob reports a malformed segment (an unclosed "[" or a trailing
// "\"); path.Match only says so when it reaches the bad part, so each
// segment is tried against itself and an empty name.
func checkGlob(pattern string) error {
	for _, seg := range segments(pattern) {
		if seg == "**" {
			continue
		}
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("bad glob segment %q in %q", seg, pattern)
		}
		if _, err := path.Match(seg, seg); err != nil {
			return fmt.Errorf("bad glob segment %q in %q", seg, pattern)
		}
	}
	return nil
}
