package vmtest

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Proc is one process a scenario started, as the guest saw it at the end.
type Proc struct {
	Name   string `json:"name"`
	PID    int    `json:"pid"`
	Role   string `json:"role"` // hog, bystander, daemon, kubelet, runtime, init
	Cgroup string `json:"cgroup"`
	Alive  bool   `json:"alive"`
	Adj    *int   `json:"adj"` // nil once the process is gone
}

// Kill is one "Killed process" line of the kernel log.
type Kill struct {
	PID    int    `json:"pid"`
	Comm   string `json:"comm"`
	Memcg  bool   `json:"memcg"` // a memory.max OOM, not a node OOM
	Adj    int    `json:"adj"`
	Record string `json:"record"`
}

// Run is the outcome of one scenario in one mode.
type Run struct {
	Scenario string             `json:"scenario"`
	Mode     Mode               `json:"mode"`
	Procs    []Proc             `json:"procs"`
	Checks   map[string]string  `json:"checks"`
	Metrics  map[string][]int64 `json:"metrics"`
	// Kmsg holds the raw /dev/kmsg records ("prio,seq,usec,flags;text")
	// between the scenario's markers, for internal/oomreport.
	Kmsg     []string      `json:"kmsg"`
	Kills    []Kill        `json:"kills"`
	AgentLog []string      `json:"agent_log,omitempty"`
	Duration time.Duration `json:"duration"` // guest uptime from begin to end
	Complete bool          `json:"complete"` // the guest printed the end marker
}

// Boot is everything one guest printed.
type Boot struct {
	Mode     Mode
	Runs     map[string]*Run
	Console  []string      // every console line, raw
	BootTime time.Duration // qemu start to the guest's first line of /init
	Total    time.Duration // qemu start to power off
	Fatal    []string      // PWFATAL lines: the guest could not set up
}

type resultLine struct {
	Scenario string          `json:"scenario"`
	Kind     string          `json:"kind"`
	Name     string          `json:"name"`
	Value    json.RawMessage `json:"value"`
	Proc
}

// parser turns console lines into a Boot, one line at a time, so a boot
// that times out still yields whatever it printed.
type parser struct {
	b      *Boot
	start  time.Time
	inKmsg string
	begin  map[string]float64
}

func newParser(mode Mode, start time.Time) *parser {
	return &parser{b: &Boot{Mode: mode, Runs: map[string]*Run{}}, start: start, begin: map[string]float64{}}
}

func (p *parser) run(s string) *Run {
	r := p.b.Runs[s]
	if r == nil {
		r = &Run{Scenario: s, Mode: p.b.Mode, Checks: map[string]string{}, Metrics: map[string][]int64{}}
		p.b.Runs[s] = r
	}
	return r
}

func (p *parser) line(ts time.Time, l string) {
	l = strings.TrimRight(l, "\r") // the serial line ends in CRLF
	p.b.Console = append(p.b.Console, l)
	if p.inKmsg != "" {
		if l == "PWKMSG end "+p.inKmsg {
			p.inKmsg = ""
		} else if l != "Terminated" { // the shell reports the timeout'd cat
			p.run(p.inKmsg).Kmsg = append(p.run(p.inKmsg).Kmsg, l)
		}
		return
	}
	// Kernel messages may still precede a marker on the same line.
	if i := strings.Index(l, "PW"); i > 0 {
		l = l[i:]
	}
	word, rest, _ := strings.Cut(l, " ")
	switch word {
	case "PWBOOT":
		p.b.BootTime = ts.Sub(p.start)
	case "PWFATAL":
		p.b.Fatal = append(p.b.Fatal, rest)
	case "PWBEGIN":
		s, up, _ := strings.Cut(rest, " uptime=")
		p.run(s)
		p.begin[s], _ = strconv.ParseFloat(up, 64)
	case "PWEND":
		s, up, _ := strings.Cut(rest, " uptime=")
		end, _ := strconv.ParseFloat(up, 64)
		r := p.run(s)
		r.Duration = time.Duration((end - p.begin[s]) * float64(time.Second))
		r.Complete = true
		r.Kills = parseKills(r.Kmsg)
	case "PWKMSG":
		if s, ok := strings.CutPrefix(rest, "begin "); ok {
			p.inKmsg = s
		}
	case "PWAGENT":
		// The agent log is printed inside the scenario's report, after
		// PWBEGIN; attribute it to the latest scenario begun.
		if s := p.latest(); s != "" {
			p.run(s).AgentLog = append(p.run(s).AgentLog, rest)
		}
	case "PWRESULT":
		var rl resultLine
		if err := json.Unmarshal([]byte(rest), &rl); err != nil {
			p.b.Fatal = append(p.b.Fatal, fmt.Sprintf("bad result line %q: %v", rest, err))
			return
		}
		r := p.run(rl.Scenario)
		switch rl.Kind {
		case "proc":
			// The outer Name shadows Proc.Name when decoding.
			rl.Proc.Name = rl.Name
			r.Procs = append(r.Procs, rl.Proc)
		case "check":
			var v string
			_ = json.Unmarshal(rl.Value, &v)
			r.Checks[rl.Name] = v
		case "metric":
			var v int64
			_ = json.Unmarshal(rl.Value, &v)
			r.Metrics[rl.Name] = append(r.Metrics[rl.Name], v)
		}
	}
}

func (p *parser) latest() string {
	best, at := "", -1.0
	for s, t := range p.begin {
		if t > at {
			best, at = s, t
		}
	}
	return best
}

// killRe reads the kill line by its field names, never by column: kernels
// append fields to it (UID, pgtables, oom_score_adj in 5.4). 5.1+ wording;
// the suite boots 6.1.
var killRe = regexp.MustCompile(`(Memory cgroup out of memory|Out of memory): Killed process (\d+) \(([^)]*)\).*oom_score_adj:(-?\d+)`)

// parseKills is a stopgap until internal/oomreport lands: it reads only
// the kill lines, which is all the verdicts need.
func parseKills(kmsg []string) []Kill {
	var ks []Kill
	for _, rec := range kmsg {
		_, text, ok := strings.Cut(rec, ";")
		if !ok {
			continue
		}
		m := killRe.FindStringSubmatch(text)
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[2])
		adj, _ := strconv.Atoi(m[4])
		ks = append(ks, Kill{PID: pid, Comm: m[3], Memcg: m[1] == "Memory cgroup out of memory", Adj: adj, Record: rec})
	}
	return ks
}

// Killed names the processes the kernel log says were killed, deduplicated
// (a group kill prints the first victim twice) and in kill order.
func (r *Run) Killed() []string {
	var out []string
	seen := map[int]bool{}
	for _, k := range r.Kills {
		if !seen[k.PID] {
			seen[k.PID] = true
			out = append(out, k.Comm)
		}
	}
	return out
}

// Dead and Survived are what the guest saw at the end, sorted.
func (r *Run) Dead() []string     { return r.names(false) }
func (r *Run) Survived() []string { return r.names(true) }

func (r *Run) names(alive bool) []string {
	var out []string
	for _, p := range r.Procs {
		if p.Alive == alive {
			out = append(out, p.Name)
		}
	}
	sort.Strings(out)
	return out
}

// Proc returns the process named n.
func (r *Run) Proc(n string) (Proc, bool) {
	for _, p := range r.Procs {
		if p.Name == n {
			return p, true
		}
	}
	return Proc{}, false
}
