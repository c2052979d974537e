// Package agent is podwarden's node agent: it keeps the OOM policy true on
// one node, continuously. It finds the target containers (through the
// container runtime, or by a cgroup path glob where there is none), writes
// memory.oom.group=0 into their cgroups and the policy's oom_score_adj into
// every one of their processes, lowers the adj of protected host daemons,
// and repairs whatever puts the old values back (container restarts,
// in-place resizes, systemd daemon-reload, kubectl exec).
//
// It reacts to events (new cgroup directories through inotify, new
// processes through the netlink process connector, runtime container
// events) and re-checks everything periodically as a safety net. Every
// action is "make it so", so the agent is idempotent and may be killed -9
// and restarted at any point. It writes only inside target cgroups, to
// target processes and to protected host processes.
package agent
