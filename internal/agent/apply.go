package agent

import (
	"errors"
	"io/fs"
)

// apply performs changes in order and records each outcome. A target that
// vanished mid-write (cgroup removed, process exited, its pid given to
// another process) is not an error: its change is marked gone.
func (a *Agent) apply(changes []Change) []Change {
	for i := range changes {
		c := &changes[i]
		if a.cfg.DryRun {
			continue
		}
		var err error
		switch c.Kind {
		case KindOOMGroup:
			err = a.cg.SetOOMGroup(c.Cgroup, c.To == 1)
		case KindPodAdj, KindHostAdj:
			// Bound to the process seen when planning: a pid recycled
			// since is a stranger and is never written.
			err = a.proc.SetOOMScoreAdj(c.PID, c.StartTime, c.To)
		}
		if err != nil {
			c.Err = err
			if !errors.Is(err, fs.ErrNotExist) {
				a.countError("write", err)
			}
		} else {
			a.remember(*c)
		}
		a.record(*c)
	}
	return changes
}

// remember notes a successful write in the state of what it was made to,
// so that writing it again is counted as drift.
func (a *Agent) remember(c Change) {
	switch c.Kind {
	case KindHostAdj:
		a.hostFixed[c.PID] = c.StartTime
	case KindPodAdj:
		if t := a.targetOf(c.Cgroup); t != nil {
			a.knowProc(t, c.PID, procState{start: c.StartTime, fixed: true})
		}
	case KindOOMGroup:
		if t := a.targetOf(c.Cgroup); t != nil {
			t.st.groups[c.Cgroup] = true
		} else if t := a.targetByPodCgroup(c.Cgroup); t != nil {
			t.st.groups[c.Cgroup] = true
		}
	}
}

// targetByPodCgroup returns a target whose pod cgroup is cg (planGroup
// clears the pod cgroup's flag too).
func (a *Agent) targetByPodCgroup(cg string) *Target {
	for _, t := range a.targets {
		if t.PodCgroup == cg {
			return t
		}
	}
	return nil
}
