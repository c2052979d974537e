// Package oom models the kernel OOM killer's victim choice (mm/oom_kill.c):
// the badness points of each task for a node OOM or an OOM inside one memory
// cgroup, the value /proc/PID/oom_score shows, and the order in which tasks
// would die if memory kept running out, including memory.oom.group, which
// turns one victim into the death of a whole cgroup.
//
// It is pure computation over Task values: callers gather tasks from /proc
// and cgroup flags from the cgroup tree, so every rule is tested on tables.
package oom
