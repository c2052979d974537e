package oom

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"podwarden/internal/cgroup"
)

// Verdict judges a predicted kill order: does a node OOM take host
// processes before the pod process that is actually eating the memory?
type Verdict struct {
	// Problem is true when host processes die before the biggest pod
	// process, the failure that takes nodes NotReady.
	Problem bool `json:"problem"`
	// Hog is the pod task holding the most memory (or the biggest task when
	// no task belongs to a pod).
	Hog *Task `json:"-"`
	// HogRank is the hog's rank in the kill order, 0 if it is never chosen.
	HogRank int `json:"hog_rank,omitempty"`
	// HostBefore are the host (non-pod) tasks the kernel kills first.
	HostBefore []Task `json:"-"`
	// GroupMembers counts the bystanders a group kill takes with the hog.
	GroupMembers int    `json:"group_members,omitempty"`
	GroupCgroup  string `json:"group_cgroup,omitempty"`
	Text         string `json:"text"`
}

// maxNames bounds how many process names the verdict sentence lists.
const maxNames = 5

// Judge explains the predicted order victims (from Predict over tasks).
func Judge(victims []Victim, tasks []Task, d Domain) Verdict {
	var hog *Task
	for i := range tasks {
		t := &tasks[i]
		if t.Unkillable() && t.Adj > AdjMin {
			continue
		}
		if !cgroup.Within(t.Cgroup, d.root()) {
			continue
		}
		better := hog == nil ||
			(t.Pod != "") && (hog.Pod == "") ||
			(t.Pod != "") == (hog.Pod != "") && t.Pages() > hog.Pages()
		if better {
			hog = t
		}
	}
	where := "a node OOM now"
	if !d.Node() {
		where = fmt.Sprintf("an OOM in %s now", d.Cgroup)
	}
	if hog == nil || len(victims) == 0 {
		return Verdict{Text: where + " would find no process it can kill"}
	}
	v := Verdict{Hog: hog}
	var before []Task
	var taker *Victim // the kill that takes the hog, when it is a group member
	for i, vic := range victims {
		if vic.Task.PID == hog.PID {
			v.HogRank = vic.Rank
			v.GroupCgroup = vic.GroupCgroup
			v.GroupMembers = len(vic.Members)
			break
		}
		if slices.ContainsFunc(vic.Members, func(m Task) bool { return m.PID == hog.PID }) {
			v.HogRank = vic.Rank
			v.GroupCgroup = vic.GroupCgroup
			v.GroupMembers = len(vic.Members)
			taker = &victims[i]
			break
		}
		if vic.Task.Pod == "" {
			before = append(before, vic.Task)
		}
	}
	v.HostBefore = before

	hogDesc := describe(*hog)
	var b strings.Builder
	switch {
	case hog.Adj <= AdjMin:
		fmt.Fprintf(&b, "%s can never kill %s: it runs at oom_score_adj %d", where, hogDesc, hog.Adj)
		v.Problem = hog.Pod != ""
	case hog.Pod != "" && len(before) > 0:
		v.Problem = true
		fmt.Fprintf(&b, "%s would kill %d system %s (%s) before %s", where, len(before),
			plural(len(before), "process", "processes"), names(before), hogDesc)
		if hog.Adj < 0 {
			fmt.Fprintf(&b, ", because that pod runs at oom_score_adj %d", hog.Adj)
		}
	case taker != nil:
		fmt.Fprintf(&b, "%s would kill %s as victim #%d", where, describe(taker.Task), taker.Rank)
	case v.HogRank == 1:
		fmt.Fprintf(&b, "%s would kill %s first", where, hogDesc)
	case v.HogRank == 0:
		fmt.Fprintf(&b, "%s would never reach %s", where, hogDesc)
	default:
		fmt.Fprintf(&b, "%s would kill %s as victim #%d", where, hogDesc, v.HogRank)
	}
	switch {
	case taker != nil && len(before) > 0:
		fmt.Fprintf(&b, "; it dies with its container: memory.oom.group on %s takes it and %d other %s when %s (victim #%d) is chosen",
			v.GroupCgroup, v.GroupMembers-1, plural(v.GroupMembers-1, "process", "processes"), taker.Task.Comm, taker.Rank)
	case taker != nil:
		fmt.Fprintf(&b, ", and memory.oom.group on %s takes %s and %d other %s with it",
			v.GroupCgroup, hogDesc, v.GroupMembers-1, plural(v.GroupMembers-1, "process", "processes"))
	case v.GroupMembers > 0:
		fmt.Fprintf(&b, "; memory.oom.group on %s takes %d other %s with it", v.GroupCgroup,
			v.GroupMembers, plural(v.GroupMembers, "process", "processes"))
	}
	if v.GroupMembers > 0 && hog.Pod != "" {
		// The seed's second problem: one OOM takes every process of the
		// container, not just the one that ran out.
		v.Problem = true
	}
	v.Text = b.String()
	return v
}

func describe(t Task) string {
	owner := "host process"
	if t.Pod != "" {
		owner = "pod " + t.Pod + "'s"
	}
	return fmt.Sprintf("%s %s (pid %d) holding %s", owner, t.Comm, t.PID, HumanBytes(t.Pages()*PageSize))
}

func names(ts []Task) string {
	var out []string
	seen := map[string]bool{}
	for _, t := range ts {
		if seen[t.Comm] {
			continue
		}
		seen[t.Comm] = true
		if len(out) == maxNames {
			out = append(out, "...")
			break
		}
		out = append(out, t.Comm)
	}
	return strings.Join(out, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// HumanBytes formats n in binary units with one decimal, as in "7.1 GiB".
func HumanBytes(n uint64) string { return string(AppendHumanBytes(nil, n)) }

// AppendHumanBytes appends HumanBytes(n) to b, without fmt: `podwarden
// events` formats a few sizes for each of hundreds of thousands of reports.
func AppendHumanBytes(b []byte, n uint64) []byte {
	const unit = 1024
	if n < unit {
		return append(strconv.AppendUint(b, n, 10), " B"...)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	b = strconv.AppendFloat(b, float64(n)/float64(div), 'f', 1, 64)
	return append(append(append(b, ' '), "KMGTPE"[exp]), "iB"...)
}
