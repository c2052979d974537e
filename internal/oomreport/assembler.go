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
//
// A report opens at its invoker line, or, when the paste starts later, at
// any line only an OOM report prints (task table, memcg counters, "Task
// in ... killed", a kill or summary line). It needs a victim: from a
// "Killed process" line, or from the oom-kill summary line alone when that
// is all the log kept (`dmesg | grep oom`). What looked like part of a
// report but never got a victim is kept as a Stray instead.
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
	// summaryVictim is set while the open report's victim came from its
	// oom-kill summary line and no kill line has been seen yet.
	summaryVictim bool
	// chosen is the task a pre-5.1 "Kill process N (comm) ... or
	// sacrifice child" line named, for the stray when no kill follows.
	chosen string
	// first is the open report's first line, for its stray.
	first string

	strays  []Stray
	nStrays int

	// others reads the kills of the node's other killers.
	others killers
}

// Stray is kernel log text that looked like part of an OOM report but
// went into none, because the rest of its report is not in the input.
type Stray struct {
	Line int    // input line (0 from /dev/kmsg)
	Text string // the line, cut to 120 bytes
	Why  string
}

// maxStrays bounds the strays kept; the rest are only counted.
const maxStrays = 32

// Strays returns the first strays seen and how many there were in all.
func (a *Assembler) Strays() ([]Stray, int) { return a.strays, a.nStrays }

func (a *Assembler) stray(line int, text, why string) {
	a.nStrays++
	if len(a.strays) < maxStrays {
		text = firstLine(text)
		if len(text) > 120 {
			text = text[:120]
		}
		a.strays = append(a.strays, Stray{Line: line, Text: strings.Clone(text), Why: why})
	}
}

// NewAssembler returns an empty Assembler.
func NewAssembler() *Assembler { return &Assembler{} }

// Add feeds one record and returns the reports it completed (usually none).
func (a *Assembler) Add(r kmsg.Record) []Report {
	if r.Program != "" || r.Carrier == kmsg.CarrierBare {
		if rep, ok := a.others.parse(&r); ok {
			return []Report{rep}
		}
		if r.Program != "" {
			return nil // another program's line is never part of the kernel's report
		}
	}
	var out []Report
	text := r.Text
	if r.Monotonic != 0 {
		a.lastMono = r.Monotonic
	}
	// Most log lines are not part of any OOM report and must cost next
	// to nothing: one search for "ill", which the markers that open a
	// report ("invoked oom-killer:", "Killed process ", "oom-kill:")
	// all hold, dismisses them.
	opens := strings.Contains(text, "ill")
	if !opens || !strings.Contains(text, "invoked oom-killer:") {
	} else if comm, rest, ok := splitInvoked(firstLine(text)); ok {
		out = a.flushTo(out)
		a.start(r)
		parseInvoked(comm, rest, &a.cur.Invoker, a.cur)
		return out
	}
	if a.cur != nil && a.victim() && r.Monotonic != 0 && r.Monotonic-a.killMono > reaperWindow {
		out = a.flushTo(out)
	}
	// A kill or summary line with no open report (its header was cut
	// from the log) still makes an incomplete report of its own; so do a
	// second summary line and a second single kill, which the kernel only
	// prints for a new OOM.
	if opens {
		summary := strings.HasPrefix(text, "oom-kill:")
		if (summary || strings.Contains(text, "Killed process ")) &&
			(a.cur == nil || summary && a.victim() || !summary && a.killed && a.cur.GroupKillCgroup == "") {
			out = a.flushTo(out)
			a.startHeadless(r)
		}
	}
	if a.killed && opensReport(text, opens) && !isGroupKillLine(text, opens) {
		// The kernel prints these before its kill line: a new OOM
		// whose invoker line is not in the input.
		out = a.flushTo(out)
	}
	if a.cur == nil {
		if !opensReport(text, opens) {
			if strings.HasPrefix(text, "oom_reaper: ") {
				if pid, comm, _, ok := splitReaped(text); ok {
					a.stray(r.Line, text, "oom_reaper reaped pid "+pid+" ("+comm+"), whose OOM report is not in the input")
				}
			}
			return out
		}
		a.startHeadless(r)
	}
	if !a.line(&r, opens) && a.victim() {
		a.quiet++
		if a.quiet > quietAfterKill {
			out = a.flushTo(out)
		}
	}
	return out
}

func isGroupKillLine(text string, opens bool) bool {
	if !opens || text == "" || text[0] != 'T' {
		return false
	}
	_, ok := cgroupOfGroupKill(text)
	return ok
}

// victim reports whether the open report has its victim, from a kill line
// or its summary line.
func (a *Assembler) victim() bool { return a.killed || a.summaryVictim }

// opensReport reports whether text, with no report open, is a line only an
// OOM report prints, so a paste that starts there is still a report;
// opens tells whether text holds "ill".
func opensReport(text string, opens bool) bool {
	if text == "" {
		return false
	}
	if opens && isSacrificeLine(text) {
		return true
	}
	switch text[0] {
	case 'T':
		if strings.HasPrefix(text, "Tasks state") {
			return true
		}
		if opens {
			_, _, ok := splitTaskIn(text)
			return ok || isGroupKillLine(text, opens)
		}
	case 'M':
		return strings.HasPrefix(text, "Memory cgroup stats for ")
	case 'm':
		name, _, _, _, ok := splitCounter(text)
		return ok && name == "memory"
	case '[':
		return strings.HasPrefix(text, "[  pid  ]") || strings.HasPrefix(text, "[ pid ]")
	}
	return false
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func (a *Assembler) start(r kmsg.Record) {
	a.open = Report{Killer: KillerKernel, Time: r.Time, Stamp: r.Stamp, Monotonic: r.Monotonic.Seconds(), Line: r.Line, Victims: []Victim{}}
	a.cur = &a.open
	a.cols, a.inStats, a.inTasks, a.killed, a.quiet = nil, false, false, false, 0
	a.summaryVictim, a.chosen, a.first = false, "", r.Text
	if a.seen == nil {
		a.seen = map[int]bool{}
	}
	clear(a.seen)
}

// startHeadless opens a report whose invoker line is not in the input.
func (a *Assembler) startHeadless(r kmsg.Record) {
	a.start(r)
	a.cur.Missing = append(a.cur.Missing, "invoker")
}

// line applies one record to the open report and reports whether it was
// part of an OOM report; opens tells whether the text holds "ill".
func (a *Assembler) line(r *kmsg.Record, opens bool) bool {
	rep := a.cur
	text := r.Text
	if r.Carrier == kmsg.CarrierBare && strings.Contains(text, "SNIP") {
		if a.killed {
			return false // cut after the kill: lines of the log, not of the report
		}
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
		if mc := a.memcg(); mc.StatsFor != "" {
			rep.statsFor = append(rep.statsFor, statsPath{mc.StatsFor, anonKB(mc.Stats)})
		}
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
		// 4.19 widened the pid column when it added "Tasks state".
		rep.preSummary = rep.preSummary || strings.HasPrefix(text, "[ pid ]")
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
		if task, pid, uid, ok := a.summary(text); ok && !a.victim() && !a.seen[pid] {
			// The victim as the summary names it; the kill line that
			// follows, if the log kept it, adds its sizes.
			a.seen[pid] = true
			rep.Victims = append(rep.Victims, Victim{PID: pid, Comm: task, UID: uid, has: victimHasUID})
			a.summaryVictim, a.killMono, a.quiet = true, r.Monotonic, 0
		}
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
		rep.TaskMemcg, rep.OOMMemcg, rep.preSummary = task, limit, true
		return true
	}
	if pid, comm, _, ok := splitSacrifice(text); ok {
		// Pre-5.1: the chosen task; the "Killed process" line that follows
		// names the one actually killed (maybe a child). Only this line
		// says "Memory cgroup out of memory" then.
		if strings.HasPrefix(text, "Memory cgroup out of memory") {
			rep.memcgKill = true
		}
		a.chosen = "pid " + pid + " (" + comm + ")"
		return true
	}
	if pid, comm, rest, ok := splitKilled(text); ok {
		if strings.HasPrefix(text, "Memory cgroup out of memory") {
			rep.memcgKill = true
		}
		if a.summaryVictim {
			// The kill the summary line announced; before 5.1 the kernel
			// could kill a child instead of the task it named.
			a.summaryVictim = false
			v := &rep.Victims[len(rep.Victims)-1]
			delete(a.seen, v.PID)
			*v = Victim{PID: pid, Comm: comm, UID: v.UID, has: v.has & victimHasUID}
			parseKillFields(rest, v)
			a.seen[pid], a.killed, rep.killSeen, a.quiet = true, true, true, 0
			return true
		}
		if a.seen[pid] {
			return true
		}
		a.seen[pid] = true
		v := Victim{PID: pid, Comm: comm}
		parseKillFields(rest, &v)
		v.GroupMember = a.killed && rep.GroupKillCgroup != ""
		rep.Victims = append(rep.Victims, v)
		if !a.killed {
			a.killMono = r.Monotonic
		}
		a.killed, rep.killSeen, a.quiet = true, true, 0
		return true
	}
	if pid, comm, rest, ok := splitReaped(text); ok {
		n := atoi(pid)
		if !a.seen[n] {
			a.stray(r.Line, text, "oom_reaper reaped pid "+pid+" ("+comm+"), which no kill line in the input names")
			return true
		}
		rp := Reaped{PID: n, Comm: comm}
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
	if a.inStats && !a.victim() && (strings.HasPrefix(text, " ") || isStatLine(firstLine(text))) {
		parseStats(text, a.memcg().Stats)
		return true
	}
	// Call trace, registers, Mem-Info node lines: part of the report but
	// not recorded, except what the trace tells of the OOM's kind for a
	// paste that ends before the lines that say it.
	if a.victim() {
		return false
	}
	if a.cur.trace != traceMemcg && strings.Contains(text, "out_of_memory") {
		a.cur.trace = traceNode
		if strings.Contains(text, "mem_cgroup_out_of_memory") {
			a.cur.trace = traceMemcg
		}
	}
	return true
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
// nodemask, which the invoker line may have set). It returns the victim
// the line names, if it names one.
func (a *Assembler) summary(text string) (task string, pid, uid int, ok bool) {
	rep := a.cur
	var constraint, cpuset, mems, oomMemcg, taskMemcg string
	global := false
	eachSummaryKV(text, func(k, v string) {
		switch k {
		case "task":
			task = v
		case "pid":
			pid, ok = atoi(v), countDigits(v) == len(v) && v != ""
		case "uid":
			uid = atoi(v)
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
	return task, pid, uid, ok && pid > 0
}

func appendOnce(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// Pending reports whether an open report already has its victim, so a
// follower may Flush it after a quiet spell instead of waiting for more
// records.
func (a *Assembler) Pending() bool { return a.cur != nil && a.victim() }

// Flush emits the open report, if any; call it at end of input.
func (a *Assembler) Flush() []Report { return a.flushTo(nil) }

// flushTo appends the open report, if any, to out; one without a victim
// becomes a stray.
func (a *Assembler) flushTo(out []Report) []Report {
	if a.cur == nil {
		return out
	}
	rep := a.cur
	a.cur = nil
	if len(rep.Victims) == 0 && rep.Invoker.Comm == "" {
		// Lines of a report with neither its invoker nor a victim say
		// too little to be one: the first of them is named as a stray.
		why := "part of an OOM report without its kill line (the input starts or ends inside the report)"
		if a.chosen != "" {
			why = "the OOM killer chose " + a.chosen + ", but the \"Killed process\" line is not in the input"
		}
		a.stray(rep.Line, a.first, why)
		return out
	}
	// An invoker with no kill after it (a paste that ends in the call
	// trace) is still an OOM the kernel had: an incomplete report with
	// what the input kept, never silence.
	rep.chosen = a.chosen
	out = append(out, *rep)
	finish(&out[len(out)-1])
	return out
}
