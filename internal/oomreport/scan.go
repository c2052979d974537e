package oomreport

import "strings"

// Hand-written matchers for the report's fixed lines, in the kernel's
// wording (mm/oom_kill.c and mm/memcontrol.c print them). Each returns what the regexp named in its comment
// would capture, and scan_test.go fuzzes them against that regexp: the
// regexps were a sixth of the parse, most of it backtracking over lines
// that do not match.

// splitInvoked matches `^(.*) invoked oom-killer: (.*)$` on one line; the
// greedy first group makes the last marker the separator.
func splitInvoked(line string) (comm, rest string, ok bool) {
	const marker = " invoked oom-killer: "
	if strings.IndexByte(line, '\n') >= 0 {
		return "", "", false
	}
	i := strings.LastIndex(line, marker)
	if i < 0 {
		return "", "", false
	}
	return line[:i], line[i+len(marker):], true
}

// splitCPU matches
// `^CPU: \d+ (?:UID: \d+ )?PID: (\d+) Comm: .*?(?:Not tainted|Tainted: [A-Z ]*?) (\S+) #`.
func splitCPU(text string) (pid, kernel string, ok bool) {
	s, ok := strings.CutPrefix(text, "CPU: ")
	if !ok {
		return "", "", false
	}
	if s, ok = cutDigitsSpace(s); !ok {
		return "", "", false
	}
	// The optional UID group: once "UID: " is there, "PID: " cannot be.
	if t, ok := strings.CutPrefix(s, "UID: "); ok {
		if t, ok = cutDigitsSpace(t); ok {
			s = t
		}
	}
	if s, ok = strings.CutPrefix(s, "PID: "); !ok {
		return "", "", false
	}
	n := countDigits(s)
	if n == 0 {
		return "", "", false
	}
	pid = s[:n]
	if s, ok = strings.CutPrefix(s[n:], " Comm: "); !ok {
		return "", "", false
	}
	// ".*?" stops at a newline, and tries the shortest comm first. Both
	// alternatives hold "ainted" (at offset 5 and 1), and two of those
	// are at least 6 bytes apart, so visiting them in order visits the
	// alternatives' start positions in order too.
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	for off := 0; ; {
		j := strings.Index(s[off:], "ainted")
		if j < 0 {
			return "", "", false
		}
		j += off
		if j >= 5 && s[j-5:j] == "Not t" {
			if k, ok := kernelAt(s[j+len("ainted"):]); ok {
				return pid, k, true
			}
		}
		if j >= 1 && s[j-1] == 'T' && strings.HasPrefix(s[j+len("ainted"):], ": ") {
			flags := s[j+len("ainted: "):]
			for q := 0; q <= len(flags); q++ {
				if k, ok := kernelAt(flags[q:]); ok {
					return pid, k, true
				}
				if q < len(flags) && flags[q] != ' ' && (flags[q] < 'A' || flags[q] > 'Z') {
					break
				}
			}
		}
		off = j + 1
	}
}

// kernelAt matches `^ (\S+) #`: \S+ is greedy and cannot give back, since
// what follows starts with a space.
func kernelAt(s string) (string, bool) {
	if len(s) < 2 || s[0] != ' ' {
		return "", false
	}
	n := countNonSpace(s[1:])
	if n == 0 || !strings.HasPrefix(s[1+n:], " #") {
		return "", false
	}
	return s[1 : 1+n], true
}

// splitCounter matches
// `^(memory|swap|memory\+swap|kmem): usage (\d+)kB, limit (\d+)kB, failcnt (\d+)`.
// It runs on every line of a report, so it looks at the start only.
func splitCounter(text string) (name, usage, limit, failcnt string, ok bool) {
	var s string
	switch {
	case strings.HasPrefix(text, "memory: usage "):
		name, s = "memory", text[len("memory: usage "):]
	case strings.HasPrefix(text, "memory+swap: usage "):
		name, s = "memory+swap", text[len("memory+swap: usage "):]
	case strings.HasPrefix(text, "swap: usage "):
		name, s = "swap", text[len("swap: usage "):]
	case strings.HasPrefix(text, "kmem: usage "):
		name, s = "kmem", text[len("kmem: usage "):]
	default:
		return "", "", "", "", false
	}
	if usage, s, ok = cutDigitsThen(s, "kB, limit "); !ok {
		return
	}
	if limit, s, ok = cutDigitsThen(s, "kB, failcnt "); !ok {
		return
	}
	n := countDigits(s)
	if n == 0 {
		return "", "", "", "", false
	}
	return name, usage, limit, s[:n], true
}

// splitSacrifice matches
// `Kill process (\d+) \((.*?)\) score (\d+) or sacrifice child` anywhere.
func splitSacrifice(text string) (pid, comm, score string, ok bool) {
	const marker = "Kill process "
	for off := 0; ; {
		i := strings.Index(text[off:], marker)
		if i < 0 {
			return "", "", "", false
		}
		s := text[off+i+len(marker):]
		off += i + 1
		n := countDigits(s)
		if n == 0 || !strings.HasPrefix(s[n:], " (") {
			continue
		}
		pid, s = s[:n], s[n+2:]
		if nl := strings.IndexByte(s, '\n'); nl >= 0 {
			s = s[:nl]
		}
		for p := strings.IndexByte(s, ')'); p >= 0; {
			if t, ok := strings.CutPrefix(s[p:], ") score "); ok {
				if score, _, ok := cutDigitsThen(t, " or sacrifice child"); ok {
					return pid, s[:p], score, true
				}
			}
			q := strings.IndexByte(s[p+1:], ')')
			if q < 0 {
				break
			}
			p += 1 + q
		}
	}
}

func isSacrificeLine(text string) bool {
	_, _, _, ok := splitSacrifice(text)
	return ok
}

// splitReaped matches `^oom_reaper: reaped process (\d+) \((.*?)\),(.*)$`;
// neither group crosses a newline, so one anywhere means no match.
func splitReaped(text string) (pid, comm, rest string, ok bool) {
	s, ok := strings.CutPrefix(text, "oom_reaper: reaped process ")
	if !ok || strings.IndexByte(s, '\n') >= 0 {
		return "", "", "", false
	}
	n := countDigits(s)
	if n == 0 || !strings.HasPrefix(s[n:], " (") {
		return "", "", "", false
	}
	pid, s = s[:n], s[n+2:]
	k := strings.Index(s, "),")
	if k < 0 {
		return "", "", "", false
	}
	return pid, s[:k], s[k+2:], true
}

// splitTaskIn matches `^Task in (\S+) killed as a result of limit of (\S+)`.
func splitTaskIn(text string) (task, limit string, ok bool) {
	s, ok := strings.CutPrefix(text, "Task in ")
	if !ok {
		return "", "", false
	}
	n := countNonSpace(s)
	if n == 0 {
		return "", "", false
	}
	task = s[:n]
	if s, ok = strings.CutPrefix(s[n:], " killed as a result of limit of "); !ok {
		return "", "", false
	}
	if n = countNonSpace(s); n == 0 {
		return "", "", false
	}
	return task, s[:n], true
}

// cgroupOfGroupKill matches
// `^Tasks in (\S+) are going to be killed due to memory\.oom\.group set`.
func cgroupOfGroupKill(text string) (string, bool) {
	s, ok := strings.CutPrefix(text, "Tasks in ")
	if !ok {
		return "", false
	}
	const tail = " are going to be killed due to memory.oom.group set"
	n := countNonSpace(s)
	// A pager or terminal that cuts long lines may cut this one inside
	// its tail or its path: a path that starts at the root still says
	// which group the kills that follow belong to.
	if n == 0 || !strings.HasPrefix(s[n:], tail) && (s[0] != '/' || !strings.HasPrefix(tail, s[n:])) {
		return "", false
	}
	return s[:n], true
}

func countDigits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// countNonSpace counts the leading bytes that \S matches: RE2's \s is
// [\t\n\f\r ], and an invalid UTF-8 byte is not in it.
func countNonSpace(s string) int {
	n := 0
	for n < len(s) {
		switch s[n] {
		case ' ', '\t', '\n', '\f', '\r':
			return n
		}
		n++
	}
	return n
}

// cutDigitsSpace cuts `\d+ ` off the front of s.
func cutDigitsSpace(s string) (string, bool) {
	n := countDigits(s)
	if n == 0 || n >= len(s) || s[n] != ' ' {
		return "", false
	}
	return s[n+1:], true
}

// cutDigitsThen cuts `(\d+)` followed by sep off the front of s.
func cutDigitsThen(s, sep string) (digits, rest string, ok bool) {
	n := countDigits(s)
	if n == 0 || !strings.HasPrefix(s[n:], sep) {
		return "", "", false
	}
	return s[:n], s[n+len(sep):], true
}
