package oomreport

import (
	"fmt"
	"strconv"
	"strings"

	"podwarden/internal/cgroup"
)

// finish derives the fields that need the whole report: kind, cgroups and
// pods of victims, completeness and the diagnosis.
func finish(r *Report) {
	switch {
	case r.Constraint == "CONSTRAINT_MEMCG", r.OOMMemcg != "" && r.OOMMemcg != "global_oom":
		r.Kind = "cgroup"
	case r.Constraint == "" && r.OOMMemcg == "" && (r.Memcg != nil || r.memcgKill):
		// Pre-5.0 kernels print no summary line; memcg counters only
		// appear for a cgroup OOM.
		r.Kind = "cgroup"
	default:
		r.Kind = "node"
	}
	for i := range r.Victims {
		v := &r.Victims[i]
		switch {
		case v.GroupMember:
			v.Cgroup = r.GroupKillCgroup
		case r.TaskMemcg != "":
			v.Cgroup = r.TaskMemcg
		}
		// Kill lines before 5.4 carry no oom_score_adj; the task table does.
		if v.OOMScoreAdj == 0 {
			for _, t := range r.Tasks {
				if t.PID == v.PID {
					v.OOMScoreAdj = t.OOMScoreAdj
				}
			}
		}
		o := cgroup.ParsePath(v.Cgroup)
		v.PodUID, v.ContainerID = o.PodUID, o.ContainerID
	}
	attr := r.TaskMemcg
	if r.Kind == "cgroup" {
		attr = r.OOMMemcg
	}
	o := cgroup.ParsePath(attr)
	if !o.InPod() {
		o = cgroup.ParsePath(r.TaskMemcg)
	}
	r.PodUID, r.ContainerID = o.PodUID, o.ContainerID
	if r.Invoker.Comm == "" {
		r.Missing = appendOnce(r.Missing, "invoker")
	}
	if len(r.Victims) == 0 {
		r.Missing = appendOnce(r.Missing, "kill line")
	}
	if r.Constraint == "" && r.TaskMemcg == "" {
		r.Missing = appendOnce(r.Missing, "oom-kill summary")
	}
	r.Incomplete = len(r.Missing) > 0
	r.Diagnosis = diagnose(r)
}

// diagnose builds the summary by concatenation: fmt.Sprintf was a tenth of
// assembling report-dense logs.
func diagnose(r *Report) Diagnosis {
	var d Diagnosis
	var parts []string
	victim := "no process (kill line missing)"
	if len(r.Victims) > 0 {
		v := r.Victims[0]
		victim = v.Comm + " (pid " + strconv.Itoa(v.PID) + ", " + strconv.FormatInt(v.AnonRSSKB, 10) +
			" kB anon, adj " + strconv.Itoa(v.OOMScoreAdj) + ")"
	}
	if r.Kind == "cgroup" {
		d.Codes = append(d.Codes, DiagCgroupLimit)
		where := r.OOMMemcg
		if r.PodUID != "" {
			where = "container " + short(r.ContainerID) + " of pod " + r.PodUID
		}
		lim := ""
		if r.Memcg != nil && r.Memcg.LimitKB > 0 {
			lim = " (" + strconv.FormatInt(r.Memcg.UsageKB, 10) + " of " + strconv.FormatInt(r.Memcg.LimitKB, 10) + " kB)"
		}
		parts = append(parts, where+" hit its memory limit"+lim+"; killed "+victim)
	} else {
		d.Codes = append(d.Codes, DiagNodeOOM)
		parts = append(parts, "the node ran out of memory; killed "+victim)
		if gap := protectionGap(r); gap != "" {
			d.Codes = append(d.Codes, DiagProtectionGap)
			parts = append(parts, gap)
		}
	}
	if n := bystanders(r); n > 0 {
		d.Codes = append(d.Codes, DiagGroupKill)
		parts = append(parts, "group kill took "+strconv.Itoa(n)+" bystanders (memory.oom.group on "+r.GroupKillCgroup+")")
	}
	d.Summary = strings.Join(parts, "; ")
	return d
}

// protectionGap finds a node OOM that killed a process outside any pod
// while a pod process held more memory at a negative adj. The task table
// prints no cgroups, so pod processes are recognised by the adj values
// kubelet gives containers (-997 Guaranteed; FACTS.md) — daemons at
// -999/-998/-1000 are the runtime and kubelet, not pods.
func protectionGap(r *Report) string {
	if len(r.Victims) == 0 || r.Victims[0].PodUID != "" || r.Victims[0].Cgroup == "" {
		return ""
	}
	v := r.Victims[0]
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
	return fmt.Sprintf("protection gap: %s outside any pod was killed while pod process %s (pid %d) held %d kB at adj %d",
		v.Comm, big.Name, big.PID, big.RSS*4, big.OOMScoreAdj)
}

func bystanders(r *Report) int {
	if r.GroupKillCgroup == "" || len(r.Victims) < 2 {
		return 0
	}
	return len(r.Victims) - 1
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
