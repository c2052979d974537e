package oomreport

import (
	"fmt"
	"strconv"
	"strings"

	"podwarden/internal/cgroup"
	"podwarden/internal/oom"
)

// finish derives the fields that need the whole report: kind, cgroups and
// pods of victims, completeness and the diagnosis.
func finish(r *Report) {
	if r.Memcg != nil && r.Memcg.StatsFor != "" {
		r.statsFor = append(r.statsFor, statsPath{r.Memcg.StatsFor, anonKB(r.Memcg.Stats)})
	}
	switch {
	case r.Constraint == "CONSTRAINT_MEMCG", r.OOMMemcg != "" && r.OOMMemcg != "global_oom":
		r.Kind = KindCgroup
	case r.Constraint == "" && r.OOMMemcg == "" && (r.Memcg != nil || r.memcgKill):
		// Pre-5.0 kernels print no summary line; memcg counters only
		// appear for a cgroup OOM.
		r.Kind = KindCgroup
	case len(r.Victims) == 0 && r.trace == traceMemcg:
		r.Kind = KindCgroup
	case len(r.Victims) == 0 && r.trace != traceNode && r.Constraint == "":
		// Only the invoker is known: nothing says which OOM it was.
		r.Kind = KindUnknown
	default:
		r.Kind = KindNode
	}
	if r.Kind == KindCgroup && r.OOMMemcg == "" && len(r.statsFor) > 0 {
		// The kernel prints the stats of the memcg over its limit first
		// (then its descendants'): a paste without the "Task in" or
		// summary line still names it there.
		r.OOMMemcg = r.statsFor[0].path
	}
	for i := range r.Victims {
		v := &r.Victims[i]
		switch {
		case v.GroupMember:
			v.Cgroup = r.GroupKillCgroup
		case r.TaskMemcg != "":
			v.Cgroup = r.TaskMemcg
		}
		// Kill lines before 5.4 carry no oom_score_adj, before 4.19 no
		// UID; the task table does.
		if v.has&(victimHasAdj|victimHasUID) != victimHasAdj|victimHasUID {
			for _, t := range r.Tasks {
				if t.PID != v.PID {
					continue
				}
				if v.has&victimHasAdj == 0 && t.has&taskHasAdj != 0 {
					v.OOMScoreAdj, v.has = t.OOMScoreAdj, v.has|victimHasAdj
				}
				if v.has&victimHasUID == 0 && t.has&taskHasUID != 0 {
					v.UID, v.has = t.UID, v.has|victimHasUID
				}
			}
		}
		path := v.Cgroup
		if path == "" {
			// No line of the input named the victim's cgroup; the group
			// it was killed with, or the memcg over its limit, holds it.
			path = r.GroupKillCgroup
			if path == "" && r.Kind == KindCgroup {
				path = r.OOMMemcg
			}
		}
		o := r.owner(path)
		v.PodUID, v.ContainerID = o.PodUID, o.ContainerID
	}
	attr := r.TaskMemcg
	if r.Kind == KindCgroup {
		attr = r.OOMMemcg
	}
	o := r.owner(attr)
	if o.ContainerID == "" && !o.InPod() && attr != r.TaskMemcg {
		o = r.owner(r.TaskMemcg)
	}
	r.PodUID, r.ContainerID = o.PodUID, o.ContainerID
	if attr == "" && r.TaskMemcg == "" && len(r.Victims) > 0 {
		// The input names neither memcg (a paste from the kill line on):
		// the victim's pod is the report's.
		r.PodUID, r.ContainerID = r.Victims[0].PodUID, r.Victims[0].ContainerID
	}
	if r.Invoker.Comm == "" {
		r.Missing = appendOnce(r.Missing, "invoker")
	}
	if !r.killSeen {
		r.Missing = appendOnce(r.Missing, "kill line")
	}
	if r.Constraint == "" && r.TaskMemcg == "" && expectsSummary(r) {
		r.Missing = appendOnce(r.Missing, "oom-kill summary")
	}
	r.Incomplete = len(r.Missing) > 0
	r.Diagnosis = diagnose(r)
}

// parseOwner is cgroup.ParsePath, then cgroup.ParseDockerPath for Docker
// containers outside Kubernetes, with a shortcut: every path they
// attribute has a "kubepods" or "docker" segment, and most memcgs in a log
// have neither.
func parseOwner(path string) cgroup.Owner {
	if strings.Contains(path, "kubepods") {
		if o := cgroup.ParsePath(path); o.InPod() {
			return o
		}
	}
	if strings.Contains(path, "docker") {
		return cgroup.ParseDockerPath(path)
	}
	return cgroup.Owner{}
}

// owner attributes path, a cgroup the report printed. A paste cut at the
// end of its lines cuts the paths there too; another line of the report
// (the memory.oom.group line, oom_memcg, task_memcg, "Task in", the memcg
// stats header) may have printed the same path whole, and then that one
// tells the pod and container.
func (r *Report) owner(path string) cgroup.Owner {
	o := parseOwner(path)
	if o.ContainerID != "" || path == "" {
		return o
	}
	var stats string
	if r.Memcg != nil {
		stats = r.Memcg.StatsFor
	}
	for _, whole := range [...]string{r.GroupKillCgroup, r.OOMMemcg, r.TaskMemcg, stats} {
		if !cutFrom(path, whole) {
			continue
		}
		if w := parseOwner(whole); w.ContainerID != "" || w.InPod() && !o.InPod() {
			return w
		}
	}
	if o.InPod() && r.TaskMemcg == "" {
		if c := r.biggestContainerUnder(path); c.ContainerID != "" {
			return c
		}
	}
	return o
}

// biggestContainerUnder attributes a pod-level path to one of its
// containers when no line of the report names the task's cgroup (a v1
// paste without its "Task in" line): the cgroup v1 report prints the
// stats of every cgroup below the one over its limit, and the container
// whose own stats hold the most anon memory is the one the kernel's
// badness picks from. A tie names none.
func (r *Report) biggestContainerUnder(path string) cgroup.Owner {
	var best cgroup.Owner
	var most int64 = -1
	tie := false
	for _, s := range r.statsFor {
		if !strings.HasPrefix(s.path, path+"/") {
			continue
		}
		o := parseOwner(s.path)
		if o.ContainerID == "" {
			continue
		}
		switch {
		case s.anonKB > most:
			best, most, tie = o, s.anonKB, false
		case s.anonKB == most && o.ContainerID != best.ContainerID:
			tie = true
		}
	}
	if tie {
		return cgroup.Owner{}
	}
	return best
}

// anonKB is the anon memory a "Memory cgroup stats" block gives: cgroup
// v1's rss (printed in kB), or cgroup v2's anon (bytes).
func anonKB(stats map[string]int64) int64 {
	if n, ok := stats["rss"]; ok {
		return n
	}
	return stats["anon"] / 1024
}

// cutFrom reports whether path looks like whole cut short: a prefix of it
// that ends inside a path segment, or with the "/" before one. (A prefix
// that ends at a segment's end is an ancestor cgroup, not a cut.)
func cutFrom(path, whole string) bool {
	return len(whole) > len(path) && strings.HasPrefix(whole, path) &&
		(whole[len(path)] != '/' || strings.HasSuffix(path, "/"))
}

// diagnose appends the summary into one buffer: fmt.Sprintf and the
// joined parts were a tenth of assembling report-dense logs.
func diagnose(r *Report) Diagnosis {
	if r.Killer != "" && r.Killer != KillerKernel {
		return diagnoseKiller(r)
	}
	d := Diagnosis{Codes: make([]string, 0, 3)}
	b := make([]byte, 0, 160)
	if len(r.Victims) == 0 {
		// Only an invoker: say what is known and that the rest is cut.
		switch r.Kind {
		case KindCgroup:
			d.Codes = append(d.Codes, DiagCgroupLimit)
			b = append(b, "a memory cgroup hit its limit: "...)
		case KindNode:
			d.Codes = append(d.Codes, DiagNodeOOM)
			b = append(b, "the node ran out of memory: "...)
		}
		b = append(b, r.Invoker.Comm...)
		if r.Invoker.PID > 0 {
			b = strconv.AppendInt(append(b, " (pid "...), int64(r.Invoker.PID), 10)
			b = append(b, ')')
		}
		b = append(b, " invoked the OOM killer; the input ends before the kernel chose a victim"...)
		if r.chosen != "" {
			b = append(append(b, " (it chose "...), r.chosen...)
			b = append(b, ", but its kill line is not in the input)"...)
		}
		d.Summary = string(b)
		return d
	}
	if r.Kind == KindCgroup {
		d.Codes = append(d.Codes, DiagCgroupLimit)
		switch {
		case r.PodUID != "" && r.ContainerID != "":
			b = append(append(append(append(b, "container "...), cgroup.ShortID(r.ContainerID)...), " of pod "...), r.pod()...)
		case r.PodUID != "":
			b = append(append(b, "pod "...), r.pod()...)
		case r.ContainerID != "":
			b = append(append(b, "container "...), cgroup.ShortID(r.ContainerID)...)
		case r.OOMMemcg != "":
			b = append(b, r.OOMMemcg...)
		default:
			b = append(b, "a memory cgroup (not named in the input)"...)
		}
		b = append(b, " hit its memory limit"...)
		if r.Memcg != nil && r.Memcg.LimitKB > 0 {
			b = appendKiB(append(b, " ("...), r.Memcg.UsageKB)
			b = append(appendKiB(append(b, " of "...), r.Memcg.LimitKB), ')')
		}
		b = appendVictim(append(b, "; killed "...), r)
	} else {
		d.Codes = append(d.Codes, DiagNodeOOM)
		b = appendVictim(append(b, "the node ran out of memory; killed "...), r)
		if gap := protectionGap(r); gap != "" {
			d.Codes = append(d.Codes, DiagProtectionGap)
			b = append(append(b, "; "...), gap...)
		}
	}
	if n := bystanders(r); n > 0 {
		d.Codes = append(d.Codes, DiagGroupKill)
		b = strconv.AppendInt(append(b, "; group kill took "...), int64(n), 10)
		b = append(append(append(b, " bystanders (memory.oom.group on "...), r.GroupKillCgroup...), ')')
	}
	d.Summary = string(b)
	return d
}

// appendVictim names the first victim: "comm (pid N, 1.2 GiB anon, adj
// N)", or "comm (pid N)" when only the summary line named it.
func appendVictim(b []byte, r *Report) []byte {
	if len(r.Victims) == 0 {
		return append(b, "no process (kill line missing)"...)
	}
	v := &r.Victims[0]
	b = strconv.AppendInt(append(append(b, v.Comm...), " (pid "...), int64(v.PID), 10)
	if r.Sized() {
		b = append(appendKiB(append(b, ", "...), v.AnonRSSKB), " anon"...)
		if adj, ok := v.Adj(); ok {
			b = strconv.AppendInt(append(b, ", adj "...), int64(adj), 10)
		}
	}
	return append(b, ')')
}

// appendKiB formats a kernel kB figure as `podwarden victims` shows sizes.
func appendKiB(b []byte, n int64) []byte { return oom.AppendHumanBytes(b, uint64(max(n, 0))*1024) }

// protectionGap finds a node OOM that killed a process outside any pod
// while a pod process held more memory at a negative adj. The task table
// prints no cgroups, so pod processes are recognised by the adj values
// kubelet gives containers (-997 Guaranteed, pkg/kubelet/qos/policy.go;
// docs/events.md) — daemons at
// -999/-998/-1000 are the runtime and kubelet, not pods.
//
// Kernels before 5.0 name no cgroup in a node OOM report at all; there
// the victim is taken to be outside any pod when its oom_score_adj is one
// kubelet never gives a container (pod processes run at -997 or 2..1000),
// and the sentence says it was judged so.
func protectionGap(r *Report) string {
	if len(r.Victims) == 0 || r.Victims[0].PodUID != "" {
		return ""
	}
	v := r.Victims[0]
	byAdj := false
	if v.Cgroup == "" {
		adj, known := v.Adj()
		if expectsSummary(r) || !known || adj == -997 || adj >= 2 {
			return ""
		}
		byAdj = true
	}
	var big *Task
	for i := range r.Tasks {
		t := &r.Tasks[i]
		if t.OOMScoreAdj != -997 {
			continue
		}
		if t.RSS*4 > v.AnonRSSKB+v.FileRSSKB+v.ShmemRSSKB && (big == nil || t.RSS > big.RSS) {
			big = t
		}
	}
	if big == nil {
		return ""
	}
	where := "outside any pod"
	if byAdj {
		where = fmt.Sprintf("outside any pod (by its oom_score_adj %d: kernel %s names no cgroups)", v.OOMScoreAdj, r.Kernel)
	}
	return fmt.Sprintf("protection gap: %s %s was killed while pod process %s (pid %d) held %s at adj %d",
		v.Comm, where, big.Name, big.PID, appendKiB(nil, big.RSS*4), big.OOMScoreAdj)
}

func bystanders(r *Report) int {
	if r.GroupKillCgroup == "" || len(r.Victims) < 2 {
		return 0
	}
	return len(r.Victims) - 1
}
