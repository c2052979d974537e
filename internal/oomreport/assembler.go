package oomreport

import (
	"strings"
	"time"

	"podwarden/internal/kmsg"
)

// quietAfterKill is how many unrelated records may follow a kill line
// before the report is emitted: group-kill members and the oom_reaper line
// come a little later, interleaved with other messages.
const quietAfterKill = 64

// reaperWindow bounds how long after the kill an oom_reaper line still
// belongs to the report.
const reaperWindow = 5 * time.Second

// Assembler turns a stream of records into Reports. It keeps at most one
// report in memory, so it runs in constant memory on any input size.
type Assembler struct {
	cur      *Report // &open while a report is open, else nil
	open     Report  // held in place: a heap Report per OOM added up
	cols     []string
	inStats  bool
	inTasks  bool
	killed   bool
	quiet    int
	killMono time.Duration
	lastMono time.Duration
	seen     map[int]bool
	fields   []string // scratch for splitting task rows
	// header is the last task table header seen, headerCols its columns.
	header     string
	headerCols []string
}

// NewAssembler returns an empty Assembler.
func NewAssembler() *Assembler { return &Assembler{} }

// Add feeds one record and returns the reports it completed (usually none).
func (a *Assembler) Add(r kmsg.Record) []Report {
	var out []Report
	text := r.Text
	if r.Monotonic != 0 {
		a.lastMono = r.Monotonic
	}
	// Most log lines are not part of any OOM report and must cost next
	// to nothing: one search for "ill", which the three markers that open
	// a report ("invoked oom-killer:", "Killed process ", "oom-kill:")
	// all hold, dismisses them.
	opens := strings.Contains(text, "ill")
	if !opens || !strings.Contains(text, "invoked oom-killer:") {
	} else if comm, rest, ok := splitInvoked(firstLine(text)); ok {
		out = a.flushTo(out)
		a.start(r)
		parseInvoked(comm, rest, &a.cur.Invoker, a.cur)
		return out
	}
	// A kill line with no open report (its header was cut from the log)
	// still makes an incomplete report of its own; so does a second
	// single kill, which the kernel only prints for a new OOM.
	if opens && (strings.Contains(text, "Killed process ") || strings.HasPrefix(text, "oom-kill:")) {
		if a.cur == nil || (a.killed && a.cur.GroupKillCgroup == "" && !strings.HasPrefix(text, "oom-kill:")) ||
			(a.killed && strings.HasPrefix(text, "oom-kill:")) {
			out = a.flushTo(out)
			a.start(r)
			a.cur.Missing = append(a.cur.Missing, "invoker")
		}
	}
	if a.cur == nil {
		return out
	}
	if a.killed && r.Monotonic != 0 && r.Monotonic-a.killMono > reaperWindow {
		return a.flushTo(out)
	}
	if !a.line(&r, opens) && a.killed {
		a.quiet++
		if a.quiet > quietAfterKill {
			out = a.flushTo(out)
		}
	}
	return out
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func (a *Assembler) start(r kmsg.Record) {
	a.open = Report{Time: r.Time, Monotonic: r.Monotonic.Seconds(), Victims: []Victim{}}
	a.cur = &a.open
	a.cols, a.inStats, a.inTasks, a.killed, a.quiet = nil, false, false, false, 0
	if a.seen == nil {
		a.seen = map[int]bool{}
	}
	clear(a.seen)
}

// line applies one record to the open report and reports whether it was
// part of an OOM report; opens tells whether the text holds "ill".
func (a *Assembler) line(r *kmsg.Record, opens bool) bool {
	rep := a.cur
	text := r.Text
	if r.Carrier == kmsg.CarrierBare && strings.Contains(text, "SNIP") {
		rep.Missing = appendOnce(rep.Missing, "lines cut from the log")
		return true
	}
	// Most lines of a report (call trace, registers, Mem-Info, stats)
	// hold no "ill" and start with a byte no prefix below starts with:
	// only their context can place them.
	if !opens && (text == "" || !prefixStart[text[0]]) {
		return a.rest(text)
	}
	switch {
	case strings.HasPrefix(text, "CPU: "):
		if pid, kernel, ok := splitCPU(text); ok {
			rep.Invoker.PID = atoi(pid)
			rep.Kernel = kernel
		}
		return true
	case strings.HasPrefix(text, "Memory cgroup stats for "):
		a.memcg().StatsFor = strings.TrimSuffix(strings.TrimPrefix(firstLine(text), "Memory cgroup stats for "), ":")
		if i := strings.Index(firstLine(text), ": "); i >= 0 {
			a.memcg().StatsFor = firstLine(text)[len("Memory cgroup stats for "):i]
		}
		// Sized for cgroup v2's ~60 memory.stat keys, so it never grows.
		a.memcg().Stats = make(map[string]int64, 64)
		parseStats(strings.TrimPrefix(text, firstLine(text)), a.memcg().Stats)
		if i := strings.Index(firstLine(text), ": "); i >= 0 {
			parseStats(firstLine(text)[i+2:], a.memcg().Stats)
		}
		a.inStats = true
		return true
	case strings.HasPrefix(text, "Tasks state"):
		a.inStats = false
		return true
	case strings.HasPrefix(text, "[  pid  ]") || strings.HasPrefix(text, "[ pid ]"):
		// Every report repeats the same header: split it once.
		if text != a.header {
			a.header, a.headerCols = text, taskColumns(text)
		}
		a.cols, a.inTasks = a.headerCols, true
		return true
	case strings.HasPrefix(text, "["):
		if t, ok := parseTaskRow(a.cols, text, &a.fields); ok && a.inTasks {
			rep.Tasks = append(rep.Tasks, t)
			return true
		}
		return false
	case strings.HasPrefix(text, "oom-kill:"):
		a.inTasks = false
		a.summary(text)
		return true
	case strings.HasPrefix(text, "active_anon:"):
		rep.MemInfo = make(map[string]int64, 24)
		eachKV(text, func(key string, n int64) { rep.MemInfo[key] = n })
		return true
	}
	if name, usage, limit, failcnt, ok := splitCounter(text); ok {
		c := Counter{UsageKB: atoi64(usage), LimitKB: atoi64(limit), Failcnt: atoi64(failcnt)}
		mc := a.memcg()
		switch name {
		case "memory":
			mc.UsageKB, mc.LimitKB, mc.Failcnt = c.UsageKB, c.LimitKB, c.Failcnt
		case "swap":
			mc.Swap = &c
		case "memory+swap":
			mc.MemSwap = &c
		case "kmem":
			mc.Kmem = &c
		}
		return true
	}
	// What follows needs "Task" or "oom_reaper: " at the start or a
	// "Kill" (process) inside, which holds the "ill" Add looked for.
	if !strings.HasPrefix(text, "Task") && !strings.HasPrefix(text, "oom_reaper: ") && (!opens || !strings.Contains(text, "Kill")) {
		return a.rest(text)
	}
	if cg, ok := cgroupOfGroupKill(text); ok {
		rep.GroupKillCgroup = cg
		return true
	}
	if task, limit, ok := splitTaskIn(text); ok {
		rep.TaskMemcg, rep.OOMMemcg = task, limit
		return true
	}
	if isSacrificeLine(text) {
		// Pre-5.1: the chosen task; the "Killed process" line that follows
		// names the one actually killed (maybe a child).
		return true
	}
	if pid, comm, rest, ok := splitKilled(text); ok {
		if a.seen[pid] {
			return true
		}
		a.seen[pid] = true
		if strings.HasPrefix(text, "Memory cgroup out of memory") {
			rep.memcgKill = true
		}
		v := Victim{PID: pid, Comm: comm}
		parseKillFields(rest, &v)
		v.GroupMember = a.killed && rep.GroupKillCgroup != ""
		rep.Victims = append(rep.Victims, v)
		if !a.killed {
			a.killMono = r.Monotonic
		}
		a.killed, a.quiet = true, 0
		return true
	}
	if pid, comm, rest, ok := splitReaped(text); ok {
		rp := Reaped{PID: atoi(pid), Comm: comm}
		var v Victim
		parseKillFields(rest, &v)
		rp.AnonRSSKB, rp.FileRSSKB, rp.ShmemRSSKB = v.AnonRSSKB, v.FileRSSKB, v.ShmemRSSKB
		rep.Reaped = append(rep.Reaped, rp)
		return true
	}
	return a.rest(text)
}

// prefixStart marks the first bytes of the prefixes line and splitCounter
// look for: "CPU: ", "Memory cgroup stats for ", "Tasks state", "[",
// "oom-kill:", "active_anon:", "memory", "swap", "kmem", "Task",
// "oom_reaper: ".
var prefixStart = func() (t [256]bool) {
	for _, c := range "CMT[oamsk" {
		t[c] = true
	}
	return t
}()

// rest handles lines that are only recognised by context.
func (a *Assembler) rest(text string) bool {
	if a.inStats && !a.killed && (strings.HasPrefix(text, " ") || isStatLine(firstLine(text))) {
		parseStats(text, a.memcg().Stats)
		return true
	}
	// Call trace, registers, Mem-Info node lines: part of the report but
	// not recorded.
	return !a.killed
}

// isStatLine matches "anon 5775360" as printed one record per line by
// kernels that do not fold memory.stat into one printk: two fields (as
// strings.Fields splits them), the second all digits.
func isStatLine(s string) bool {
	var buf [3]string
	f := appendFields(buf[:0], s, 3)
	return len(f) == 2 && countDigits(f[1]) == len(f[1])
}

func (a *Assembler) memcg() *Memcg {
	if a.cur.Memcg == nil {
		a.cur.Memcg = &Memcg{}
	}
	return a.cur.Memcg
}

// summary applies an "oom-kill:" line: a key given twice counts once,
// with its last value, and a key left out clears its field (except the
// nodemask, which the invoker line may have set).
func (a *Assembler) summary(text string) {
	rep := a.cur
	var constraint, cpuset, mems, oomMemcg, taskMemcg string
	global := false
	eachSummaryKV(text, func(k, v string) {
		switch k {
		case "constraint":
			constraint = v
		case "nodemask":
			rep.Nodemask = v
		case "cpuset":
			cpuset = v
		case "mems_allowed":
			mems = v
		case "global_oom":
			global = true
		case "oom_memcg":
			oomMemcg = v
		case "task_memcg":
			taskMemcg = v
		}
	})
	rep.Constraint, rep.Cpuset, rep.MemsAllowed, rep.TaskMemcg = constraint, cpuset, mems, taskMemcg
	rep.OOMMemcg = oomMemcg
	if global {
		rep.OOMMemcg = "global_oom"
	}
}

func appendOnce(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// Pending reports whether an open report already has its kill line, so a
// follower may Flush it after a quiet spell instead of waiting for more
// records.
func (a *Assembler) Pending() bool { return a.cur != nil && a.killed }

// Flush emits the open report, if any; call it at end of input.
func (a *Assembler) Flush() []Report { return a.flushTo(nil) }

// flushTo appends the open report, if any, to out.
func (a *Assembler) flushTo(out []Report) []Report {
	if a.cur == nil {
		return out
	}
	out = append(out, *a.cur)
	a.cur = nil
	finish(&out[len(out)-1])
	return out
}
