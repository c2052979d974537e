package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
)

// pfKthread is PF_KTHREAD from include/linux/sched.h, set in the flags
// field of /proc/PID/stat for kernel threads on every kernel since 2.6.
const pfKthread = 0x00200000

// pfExiting is PF_EXITING: set at the start of do_exit, before the
// process's memory is released.
const pfExiting = 0x00000004

// ParseError reports a file whose contents do not have the shape the kernel
// gives it. Callers can tell a malformed file (a kernel format this package
// does not know) from an I/O failure with errors.As.
type ParseError struct {
	Path string
	Err  error
}

func (e *ParseError) Error() string { return "parse " + e.Path + ": " + e.Err.Error() }

func (e *ParseError) Unwrap() error { return e.Err }

// errIncomplete marks a status file that lacks a line every live process
// has. The kernel prints such a file for a task that is being reaped, so
// the caller treats it as a process that is gone, not as a format error.
var errIncomplete = errors.New("incomplete status")

// parseStat fills the fields of p that /proc/PID/stat carries.
//
// The comm field is printed raw between parentheses and may itself hold
// spaces and ')', so the fixed fields start after the LAST ')'.
func parseStat(b []byte, p *Proc) error {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return fmt.Errorf("no (comm) in %q", clip(b))
	}
	pid, ok := atoi(bytes.TrimSpace(b[:open]))
	if !ok {
		return fmt.Errorf("invalid pid %q", clip(b[:open]))
	}
	rest := b[end+1:]
	// Fields are numbered as in proc(5): 3 is state, 4 ppid, 9 flags, 20
	// num_threads, 22 starttime. rest starts with the space before field 3.
	var (
		state   byte
		ppid    int
		flags   uint64
		threads int
		start   uint64
		n       = 2
	)
	for len(rest) > 0 && n < 22 {
		if rest[0] != ' ' {
			return fmt.Errorf("field %d: unexpected %q", n+1, clip(rest))
		}
		rest = rest[1:]
		i := bytes.IndexByte(rest, ' ')
		if i < 0 {
			i = len(rest)
		}
		f := bytes.TrimRight(rest[:i], "\n")
		rest = rest[i:]
		n++
		switch n {
		case 3:
			if len(f) != 1 {
				return fmt.Errorf("invalid state %q", clip(f))
			}
			state = f[0]
		case 4:
			if ppid, ok = atoi(f); !ok {
				return fmt.Errorf("invalid ppid %q", clip(f))
			}
		case 9:
			if flags, ok = atou(f); !ok {
				return fmt.Errorf("invalid flags %q", clip(f))
			}
		case 20:
			if threads, ok = atoi(f); !ok {
				return fmt.Errorf("invalid num_threads %q", clip(f))
			}
		case 22:
			if start, ok = atou(f); !ok {
				return fmt.Errorf("invalid starttime %q", clip(f))
			}
		}
	}
	if n < 22 {
		return fmt.Errorf("%d fields, want at least 22", n)
	}
	p.PID = pid
	p.Comm = string(b[open+1 : end])
	p.State = state
	p.PPID = ppid
	p.Threads = threads
	p.StartTime = start
	p.Kernel = flags&pfKthread != 0
	p.Exiting = flags&pfExiting != 0
	return nil
}

// status is what parseStatus finds in /proc/PID/status.
type status struct {
	uid                              int
	rssAnon, rssFile, rssShmem, swap uint64
	pgTables                         uint64
	state                            byte
	haveUID, haveKthread, kthread    bool
	ppid                             int
	havePPid                         bool
	threads                          int
	haveThreads                      bool
	nspid                            int
}

// parseStatus reads /proc/PID/status. Memory lines are optional: kernel
// threads and zombies have none, and their usage is zero. A missing Uid line
// is errIncomplete.
func parseStatus(b []byte) (status, error) {
	var s status
	err := eachField(b, func(key, val []byte) (err error) {
		// switch on string(key) compiles to a comparison without a
		// conversion, so this loop does not allocate.
		switch string(key) {
		case "State":
			if len(val) == 0 {
				err = errors.New("empty state")
			} else {
				s.state = val[0]
			}
		case "PPid":
			s.ppid, err = intField(val)
			s.havePPid = err == nil
		case "Uid":
			// Real, effective, saved, filesystem: the first is the owner.
			if i := bytes.IndexAny(val, " \t"); i >= 0 {
				val = val[:i]
			}
			s.uid, err = intField(val)
			s.haveUID = err == nil
		case "Kthread":
			var k int
			k, err = intField(val)
			s.kthread, s.haveKthread = k != 0, err == nil
		case "NSpid":
			// One pid per nested PID namespace, outermost first: the
			// last is what the process sees as its own pid.
			if i := bytes.LastIndexAny(val, " \t"); i >= 0 {
				val = val[i+1:]
			}
			s.nspid, err = intField(val)
		case "Threads":
			s.threads, err = intField(val)
			s.haveThreads = err == nil
		case "RssAnon":
			s.rssAnon, err = kBField(val)
		case "RssFile":
			s.rssFile, err = kBField(val)
		case "RssShmem":
			s.rssShmem, err = kBField(val)
		case "VmSwap":
			s.swap, err = kBField(val)
		case "VmPTE":
			s.pgTables, err = kBField(val)
		}
		return err
	})
	if err != nil {
		return s, err
	}
	if !s.haveUID {
		return s, errIncomplete
	}
	return s, nil
}

// apply copies what the status file says into p. The parent, state and
// thread count come from status only when stat was not read, so a process
// read with both files shows one consistent snapshot of those fields.
func (s status) apply(p *Proc, haveStat bool) {
	p.UID = s.uid
	p.RSSAnon, p.RSSFile, p.RSSShmem = s.rssAnon, s.rssFile, s.rssShmem
	p.Swap, p.PgTables = s.swap, s.pgTables
	p.NSPID = s.nspid
	if s.haveKthread && s.kthread {
		p.Kernel = true
	}
	if haveStat {
		return
	}
	p.State = s.state
	if s.havePPid {
		p.PPID = s.ppid
	}
	if s.haveThreads {
		p.Threads = s.threads
	}
	if !s.haveKthread {
		// Kernels before 6.x have no Kthread line; kthreadd (pid 2) is
		// the parent of every kernel thread. Only used without stat,
		// because in a PID namespace pid 2 can be an ordinary process.
		p.Kernel = p.PID == 2 || p.PPID == 2
	}
}

// parseCgroup returns the cgroup v2 path (the "0::" line) and the path of
// the v1 memory controller from /proc/PID/cgroup. Either is "" when the
// process has none, e.g. v1 lines only on a v1 host.
func parseCgroup(b []byte) (v2, v1Memory string, err error) {
	// hierarchy-ID:controller-list:cgroup-path; the path may hold colons
	// of its own.
	err = eachLine(b, func(line []byte) error {
		c1 := bytes.IndexByte(line, ':')
		if c1 < 0 {
			return errors.New("want id:controllers:path")
		}
		c2 := bytes.IndexByte(line[c1+1:], ':')
		if c2 < 0 {
			return errors.New("want id:controllers:path")
		}
		c2 += c1 + 1
		id, ctrls, path := line[:c1], line[c1+1:c2], line[c2+1:]
		if _, ok := atoi(id); !ok {
			return errors.New("invalid hierarchy id")
		}
		if string(id) == "0" && len(ctrls) == 0 {
			v2 = string(path)
			return nil
		}
		for len(ctrls) > 0 {
			c := ctrls
			if i := bytes.IndexByte(ctrls, ','); i >= 0 {
				c, ctrls = ctrls[:i], ctrls[i+1:]
			} else {
				ctrls = nil
			}
			if string(c) == "memory" {
				v1Memory = string(path)
			}
		}
		return nil
	})
	if err != nil {
		return "", "", err
	}
	return v2, v1Memory, nil
}

// Meminfo holds the /proc/meminfo values an OOM decision needs, in bytes.
type Meminfo struct {
	MemTotal, MemFree, MemAvailable uint64
	SwapTotal, SwapFree             uint64
}

// parseMeminfo reads /proc/meminfo. MemTotal must be present; the others
// are zero when missing (MemAvailable appeared in 3.14).
func parseMeminfo(b []byte) (Meminfo, error) {
	var m Meminfo
	haveTotal := false
	err := eachField(b, func(key, val []byte) error {
		var dst *uint64
		switch string(key) {
		case "MemTotal":
			dst, haveTotal = &m.MemTotal, true
		case "MemFree":
			dst = &m.MemFree
		case "MemAvailable":
			dst = &m.MemAvailable
		case "SwapTotal":
			dst = &m.SwapTotal
		case "SwapFree":
			dst = &m.SwapFree
		default:
			return nil
		}
		v, err := kBField(val)
		if err != nil {
			return err
		}
		*dst = v
		return nil
	})
	if err != nil {
		return m, err
	}
	if !haveTotal {
		return m, errors.New("no MemTotal line")
	}
	return m, nil
}

// parseCmdline splits /proc/PID/cmdline on NUL. Programs that rewrite
// their argv (setproctitle) leave NUL padding at the end, which is dropped;
// empty arguments inside are kept because they were really passed.
func parseCmdline(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	// One string for the whole line and substrings of it: two allocations
	// per process however many arguments it has.
	return strings.Split(string(b), "\x00")
}

// parseOneInt reads files such as oom_score that hold one decimal number.
func parseOneInt(b []byte) (int, error) {
	v, ok := atoi(bytes.TrimRight(b, "\n"))
	if !ok {
		return 0, fmt.Errorf("invalid integer %q", clip(b))
	}
	return v, nil
}

// eachLine calls fn with every line of b but blank ones. An error from fn
// ends the walk, wrapped with the line it was about. fn does not escape,
// so the closures the parsers pass are not allocated.
func eachLine(b []byte, fn func(line []byte) error) error {
	for len(b) > 0 {
		var line []byte
		line, b = cutLine(b)
		if len(line) == 0 {
			continue
		}
		if err := fn(line); err != nil {
			return fmt.Errorf("line %q: %w", clip(line), err)
		}
	}
	return nil
}

// eachField is eachLine for "key: value" files: fn gets the key and the
// value with the blanks before it trimmed; a line without a colon is an
// error.
func eachField(b []byte, fn func(key, val []byte) error) error {
	return eachLine(b, func(line []byte) error {
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return errors.New("no colon")
		}
		return fn(line[:colon], bytes.TrimLeft(line[colon+1:], " \t"))
	})
}

func intField(b []byte) (int, error) {
	v, ok := atoi(b)
	if !ok {
		return 0, fmt.Errorf("invalid integer %q", clip(b))
	}
	return v, nil
}

// kBField parses "1234 kB" into bytes. A value without a unit (as some
// meminfo lines have) is taken as is.
func kBField(b []byte) (uint64, error) {
	num, unit := b, []byte(nil)
	if i := bytes.IndexByte(b, ' '); i >= 0 {
		num, unit = b[:i], bytes.TrimLeft(b[i:], " ")
	}
	v, ok := atou(num)
	if !ok {
		return 0, fmt.Errorf("invalid number %q", clip(num))
	}
	switch string(unit) {
	case "":
		return v, nil
	case "kB":
		if v > (1<<64-1)/1024 {
			return 0, fmt.Errorf("%q overflows", clip(b))
		}
		return v * 1024, nil
	}
	return 0, fmt.Errorf("unknown unit %q", clip(unit))
}

// atoi parses an optionally negative decimal int without allocating, which
// strconv.Atoi on a []byte would (it needs a string).
func atoi(b []byte) (int, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	u, ok := atou(b)
	if !ok || u > math.MaxInt {
		return 0, false
	}
	if neg {
		return -int(u), true
	}
	return int(u), true
}

// atou parses an unsigned decimal number, rejecting empty input, non-digits
// and overflow.
func atou(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// clip bounds how much of a malformed file lands in an error message.
func clip(b []byte) []byte {
	const max = 64
	if len(b) > max {
		return b[:max]
	}
	return b
}

// cutLine splits off b's first line (without its newline) from the rest.
func cutLine(b []byte) (line, rest []byte) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}
