package oom

import (
	"cmp"
	"slices"
	"strings"

	"podwarden/internal/cgroup"
)

// Domain says where memory ran out.
type Domain struct {
	// Cgroup is the memory cgroup whose limit was hit; "" or "/" is a node
	// (global) OOM, whose domain is the root cgroup.
	Cgroup string
	// TotalPages is RAM + swap pages for a node OOM, and the cgroup's limit
	// (plus usable swap) in pages for a cgroup OOM.
	TotalPages uint64
}

// Node reports whether d is a node-wide OOM.
func (d Domain) Node() bool { return d.Cgroup == "" || d.Cgroup == "/" }

func (d Domain) root() string {
	if d.Node() {
		return "/"
	}
	return strings.TrimSuffix(d.Cgroup, "/")
}

// GroupFlag reports whether memory.oom.group is set on a cgroup. A nil
// GroupFlag means the hierarchy has no group kills (cgroup v1).
type GroupFlag func(cgroup string) bool

// Victim is one OOM kill in the predicted order.
type Victim struct {
	// Rank counts kills from 1.
	Rank   int
	Task   Task
	Points int64
	// GroupCgroup is the highest cgroup between the victim and the OOM
	// domain with memory.oom.group set; the kernel kills every task in it.
	GroupCgroup string
	// Members are the other tasks the group kill takes (adj -1000 and init
	// are spared, as oom_kill_memcg_member does).
	Members []Task
}

// Predict returns the order in which the kernel would kill tasks if memory in
// domain d kept running out: each OOM kills the task with the most points
// (ties go to the task found last, which for_each_process visits in
// creation order, approximated here by the higher PID), and a group kill
// removes the victim's whole oom.group cgroup at once.
func Predict(tasks []Task, d Domain, group GroupFlag) []Victim {
	type cand struct {
		t      Task
		points int64
	}
	root := d.root()
	var cands []cand
	for _, t := range tasks {
		if !cgroup.Within(t.Cgroup, root) {
			continue
		}
		if p, ok := Badness(t, d.TotalPages); ok {
			cands = append(cands, cand{t, p})
		}
	}
	slices.SortStableFunc(cands, func(a, b cand) int {
		if c := cmp.Compare(b.points, a.points); c != 0 {
			return c
		}
		return cmp.Compare(b.t.PID, a.t.PID)
	})

	dead := make(map[int]bool)
	var out []Victim
	for _, c := range cands {
		if dead[c.t.PID] {
			continue
		}
		dead[c.t.PID] = true
		v := Victim{Rank: len(out) + 1, Task: c.t, Points: c.points}
		if g := groupCgroup(c.t.Cgroup, root, group); g != "" {
			v.GroupCgroup = g
			for _, m := range tasks {
				if dead[m.PID] || m.Unkillable() || !cgroup.Within(m.Cgroup, g) {
					continue
				}
				dead[m.PID] = true
				v.Members = append(v.Members, m)
			}
		}
		out = append(out, v)
	}
	return out
}

// groupCgroup walks from cg up to and including root and returns the highest
// cgroup with the oom.group flag, as mem_cgroup_get_oom_group does. The root
// cgroup itself has no memory.oom.group file, and a victim in the root
// cgroup is never group-killed.
func groupCgroup(cg, root string, flag GroupFlag) string {
	if flag == nil || cg == "" || cg == "/" || !cgroup.Within(cg, root) {
		return ""
	}
	found := ""
	for p := cg; ; p = cgroup.Parent(p) {
		if p == "/" {
			break
		}
		if flag(p) {
			found = p
		}
		if p == root {
			break
		}
	}
	return found
}
