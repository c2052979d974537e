package preempt

import (
	"slices"
	"testing"
	"time"

	"podwarden/internal/kubeevent"
	"podwarden/internal/procfs"
	"podwarden/internal/target"
)

// TestLiveFamilyStoppedThenKilled: a real parent forking a child every
// 10 ms in a real memory cgroup (v1) beside a server. The family is
// chosen from one scan and ended later, as under load: whatever the
// parent forked in between is found after the stop and ended too, so the
// cgroup is left with the server alone and nothing is born afterwards.
func TestLiveFamilyStoppedThenKilled(t *testing.T) {
	cfs, cg := liveCgroup(t)
	e := liveEngine(t, cfs)
	server := startHelper(t, "anon 16 jupyter-lab")
	join(t, cfs, cg, server.cmd.Process.Pid)
	server.grow(t)
	spawner := startHelper(t, "storm 3000 make")
	join(t, cfs, cg, spawner.cmd.Process.Pid)
	spawner.grow(t)
	sp := spawner.cmd.Process.Pid
	var members []procfs.Proc
	waitFor(t, "5 children of the spawner in the cgroup", func() bool {
		members = members[:0]
		for _, p := range e.readProcs(cg, victimFields) {
			if p.PID == sp {
				members = append([]procfs.Proc{p}, members...)
			} else if p.PPID == sp {
				members = append(members, p)
			}
		}
		return len(members) > 5 && members[0].PID == sp
	})
	chosen := len(members)
	// The choice is stale by the time it is acted on: more are born.
	waitFor(t, "a child born after the choice", func() bool {
		n := 0
		for _, p := range e.readProcs(cg, procfs.FieldStat) {
			if p.PPID == sp {
				n++
			}
		}
		return n+1 > chosen
	})
	h, err := e.open(cg, members)
	must(t, err)
	ep := &episode{key: nodeKey, scope: kubeevent.ScopeNode, cg: cg, target: Target{Ref: target.Ref{Cgroup: cg}}, start: time.Now(),
		victim: members[0], members: members, h: h}
	e.endFamily(ep, time.Now())
	defer ep.h.Close()
	if !slices.Equal(ep.sent, []string{"SIGSTOP", "SIGKILL"}) {
		t.Errorf("sent %v, want SIGSTOP then SIGKILL", ep.sent)
	}
	t.Logf("chosen %d, ended %d (born after the choice %d)", chosen, len(ep.members), len(ep.members)-chosen)
	if len(ep.members) <= chosen {
		t.Errorf("ended %d, no more than the %d chosen before more were born: the children born meanwhile were missed", len(ep.members), chosen)
	}
	only := func() bool {
		pids, err := cfs.Procs(cg, true)
		return err == nil && slices.Equal(pids, []int{server.cmd.Process.Pid})
	}
	waitFor(t, "the cgroup to hold the server alone", only)
	// Nothing is left to fork: a child missed would be alive, and in the
	// cgroup, now or in a moment.
	time.Sleep(500 * time.Millisecond)
	if !only() {
		pids, _ := cfs.Procs(cg, true)
		t.Errorf("processes left in the cgroup after the family was ended: %v (server %d)", pids, server.cmd.Process.Pid)
	}
}
