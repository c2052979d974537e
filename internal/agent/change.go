package agent

import (
	"fmt"
)

// Kind names what a change writes.
type Kind string

const (
	// KindOOMGroup writes memory.oom.group of a target cgroup.
	KindOOMGroup Kind = "oom.group"
	// KindPodAdj writes oom_score_adj of a target container's process.
	KindPodAdj Kind = "oom_score_adj"
	// KindHostAdj lowers oom_score_adj of a protected host process.
	KindHostAdj Kind = "host_oom_score_adj"
)

// Change is one write the agent makes (or, in a dry run, would make).
type Change struct {
	Kind Kind `json:"kind"`
	// Cgroup is the cgroup written to (KindOOMGroup) or the process's
	// cgroup.
	Cgroup string `json:"cgroup,omitempty"`
	PID    int    `json:"pid,omitempty"`
	// StartTime is the process's start time (procfs.Proc.StartTime) when
	// the change was planned: the write goes to that process only, never
	// to another that was given its pid since.
	StartTime uint64 `json:"-"`
	Comm      string `json:"comm,omitempty"`
	// Pod and Container identify the target; empty for host processes.
	Pod       string `json:"pod,omitempty"`
	Container string `json:"container,omitempty"`
	// From and To are the values as the kernel files hold them: an
	// oom_score_adj, or 0 and 1 for memory.oom.group.
	From   int    `json:"from"`
	To     int    `json:"to"`
	Reason string `json:"reason"`
	// Drift is set when the agent had already made this change once and
	// something put the old value back.
	Drift bool `json:"drift,omitempty"`
	// Err is why the write failed; nil on success or in a dry run.
	Err error `json:"-"`
}

// What returns the target of the change for tables and logs.
func (c Change) What() string {
	if c.Kind == KindOOMGroup {
		return c.Cgroup
	}
	return fmt.Sprintf("pid %d (%s)", c.PID, c.Comm)
}

func boolFlag(b bool) int {
	if b {
		return 1
	}
	return 0
}
