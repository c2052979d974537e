// Package preempt acts before the kernel's OOM killer: when the node (or
// one container or pod against its memory.max) runs short of memory while
// tasks stall on it, it chooses the target container that caused it, the
// process (or family of processes) in it that grew, and ends it, then
// tells the user why (a Kubernetes Event, a metric, a log line, optionally
// a file in the container). One process gets an escalating ladder of
// signals, which stops with the process alive when its memory comes back
// (a notebook kernel interrupted by SIGINT keeps its session); a family
// is stopped (SIGSTOP), searched again for children born meanwhile, and
// killed whole (family.go).
//
// It owns the pressure watch (PSI triggers on /proc/pressure/memory and on
// every target's memory.pressure, MemAvailable headroom, usage against
// memory.max, and below releaseAvailable the pace it falls at: a fall
// that would reach criticalAvailable within two windows is danger before
// minAvailable), the episode state machine (hysteresis between
// minAvailable and releaseAvailable, a cooldown between kills, so one
// episode ends with one kill), the culprit choice and the action ladder
// (pidfd signals and process_mrelease).
//
// The engine's thread runs at nice -20 where it may: under thrashing it
// competes for the CPU with every process in direct reclaim.
//
// The culprit is what grew, never what is big or what it is called: the
// target whose committed memory grew lately, and in it the process whose
// private memory (anon + swap) grew, or the family (a parent and the
// children it forks) that did, ended together as one kill. Keep patterns
// and the container's init (the oldest process whose parent is outside the
// container, not pid 1 of an inner namespace) only spare bystanders in a
// family: a name, which a process sets itself, never protects the process
// that grew. When no kill can give the memory back (nothing growing, growth
// in shmem or kernel memory, a culprit smaller than the shortfall) nothing
// is ended and the reason is said (culprit.go, choose.go).
//
// It runs on its own goroutine, never on the agent's reconcile loop, and
// never waits on the network: Events and message files go through a
// bounded queue to a second goroutine. It learns the targets through a
// function returning a snapshot and its generation, so it depends on no
// agent internals, and takes them again only when the generation changes.
// Every reader takes its root (procfs.FS, cgroup.FS), so the decisions are
// tested on fixture trees; the signals on real child processes.
package preempt
