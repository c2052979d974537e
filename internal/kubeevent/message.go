package kubeevent

import (
	"fmt"
	"slices"
	"strings"

	"podwarden/internal/oom"
	"podwarden/internal/oomreport"
)

// PodMessage is the text of a pod's OOM Event, e.g.
//
//	OOMKilled process python (pid 1234) in container notebook: node out of memory, 7.1 GiB anon; other processes kept running
//
// or, counted from memory.events without the kernel log,
//
//	OOMKilled 1 process in container notebook: out of memory; the kernel log is not readable here, so the process is not named (memory.events)
func PodMessage(o OOM) string {
	var b strings.Builder
	if o.Comm == "" && o.PID == 0 && o.Kills > 0 {
		fmt.Fprintf(&b, "OOMKilled %d process%s", o.Kills, plural(o.Kills, "es"))
		if o.Container != "" {
			fmt.Fprintf(&b, " in container %s", o.Container)
		}
		b.WriteString(": " + cause(o.Kind))
		b.WriteString("; the kernel log is not readable here, so the process is not named (memory.events)")
		return b.String()
	}
	fmt.Fprintf(&b, "OOMKilled process %s", victim(o.Comm, o.PID))
	if o.Container != "" {
		fmt.Fprintf(&b, " in container %s", o.Container)
	}
	b.WriteString(": ")
	b.WriteString(cause(o.Kind))
	if o.AnonRSSBytes > 0 {
		fmt.Fprintf(&b, ", %s anon", oom.HumanBytes(o.AnonRSSBytes))
	}
	switch {
	case o.GroupKill && o.Bystanders > 0:
		fmt.Fprintf(&b, "; the whole container was killed (memory.oom.group=1) with %d other process%s", o.Bystanders, plural(o.Bystanders, "es"))
	case o.GroupKill:
		b.WriteString("; the whole container was killed (memory.oom.group=1)")
	default:
		b.WriteString("; other processes kept running")
	}
	return b.String()
}

// NodeMessage is the text of a node's OOM Event.
func NodeMessage(o OOM) string {
	victims := slices.Clone(o.HostVictims)
	if len(victims) == 0 && (o.Comm != "" || o.PID != 0) {
		victims = []string{victim(o.Comm, o.PID)}
	}
	if len(victims) == 0 {
		return "node out of memory: the OOM killer killed host processes"
	}
	msg := fmt.Sprintf("node out of memory: the OOM killer killed host process%s %s", plural(len(victims), "es"), strings.Join(victims, ", "))
	if o.AnonRSSBytes > 0 && len(o.HostVictims) == 0 {
		msg += fmt.Sprintf(" (%s anon)", oom.HumanBytes(o.AnonRSSBytes))
	}
	return msg
}

func victim(comm string, pid int) string {
	if comm == "" {
		comm = "?"
	}
	if pid == 0 {
		return comm
	}
	return fmt.Sprintf("%s (pid %d)", comm, pid)
}

func cause(kind oomreport.Kind) string {
	switch kind {
	case oomreport.KindNode:
		return "node out of memory"
	case oomreport.KindCgroup:
		return "memory limit reached"
	}
	return "out of memory"
}

func plural(n int, suffix string) string {
	if n == 1 {
		return ""
	}
	return suffix
}
