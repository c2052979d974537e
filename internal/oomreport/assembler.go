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
	cur      *Report
	cols     []string
	inStats  bool
	inTasks  bool
	killed   bool
	quiet    int
	killMono time.Duration
	lastMono time.Duration
	seen     map[int]bool
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
	// Cheap substring tests guard every scanner: most log lines are not
	// part of any OOM report and must cost next to nothing.
	if !strings.Contains(text, "invoked oom-killer:") {
	} else if comm, rest, ok := splitInvoked(firstLine(text)); ok {
		out = append(out, a.Flush()...)
		a.start(r)
		parseInvoked(comm, rest, &a.cur.Invoker, a.cur)
		return out
	}
	// A kill line with no open report (its header was cut from the log)
	// still makes an incomplete report of its own; so does a second
	// single kill, which the kernel only prints for a new OOM.
	if strings.Contains(text, "Killed process ") || strings.HasPrefix(text, "oom-kill:") {
		if a.cur == nil || (a.killed && a.cur.GroupKillCgroup == "" && !strings.HasPrefix(text, "oom-kill:")) ||
			(a.killed && strings.HasPrefix(text, "oom-kill:")) {
			out = append(out, a.Flush()...)
			a.start(r)
			a.cur.Missing = append(a.cur.Missing, "invoker")
		}
	}
	if a.cur == nil {
		return out
	}
	if a.killed && r.Monotonic != 0 && r.Monotonic-a.killMono > reaperWindow {
		return append(out, a.Flush()...)
	}
	if !a.line(r) && a.killed {
		a.quiet++
		if a.quiet > quietAfterKill {
			out = append(out, a.Flush()...)
		}
	}
	return out
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func (a *Assembler) start(r kmsg.Record) {
	a.cur = &Report{Time: r.Time, Monotonic: r.Monotonic.Seconds(), Victims: []Victim{}}
	a.cols, a.inStats, a.inTasks, a.killed, a.quiet = nil, false, false, false, 0
	a.seen = map[int]bool{}
}

// line applies one record to the open report and reports whether it was
// part of an OOM report.
func (a *Assembler) line(r kmsg.Record) bool {
	rep := a.cur
	text := r.Text
	if r.Flags == "untimed" && strings.Contains(text, "SNIP") {
		rep.Missing = appendOnce(rep.Missing, "lines cut from the log")
		return true
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
		a.memcg().Stats = map[string]int64{}
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
		a.cols, a.inTasks = taskColumns(text), true
		return true
	case strings.HasPrefix(text, "["):
		if t, ok := parseTaskRow(a.cols, text); ok && a.inTasks {
			rep.Tasks = append(rep.Tasks, t)
			return true
		}
		return false
	case strings.HasPrefix(text, "oom-kill:"):
		a.inTasks = false
		a.summary(parseSummary(text))
		return true
	case strings.HasPrefix(text, "active_anon:"):
		rep.MemInfo = map[string]int64{}
		eachKV(text, func(key string, n int64) { rep.MemInfo[key] = n })
		return true
	}
	if !strings.Contains(text, ": usage ") {
	} else if name, usage, limit, failcnt, ok := splitCounter(text); ok {
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
	if !strings.HasPrefix(text, "Task") && !strings.Contains(text, "process ") {
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
// kernels that do not fold memory.stat into one printk.
func isStatLine(s string) bool {
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

func (a *Assembler) memcg() *Memcg {
	if a.cur.Memcg == nil {
		a.cur.Memcg = &Memcg{}
	}
	return a.cur.Memcg
}

func (a *Assembler) summary(kv map[string]string) {
	rep := a.cur
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
func (a *Assembler) Flush() []Report {
	if a.cur == nil {
		return nil
	}
	rep := *a.cur
	a.cur = nil
	finish(&rep)
	return []Report{rep}
}
