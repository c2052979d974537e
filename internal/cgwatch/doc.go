// Package cgwatch owns the inotify watch on cgroup directory trees: it
// reports cgroup directories as they are created and removed, so the agent
// sees a new container cgroup the moment the runtime makes it instead of
// at its next scan.
//
// The watch is recursive. A new directory is watched as soon as its
// creation is read, and then listed: runtimes create nested cgroups (pod,
// container, crun's "container" sub-cgroup) faster than a watch can be
// added, and directories made in that gap are reported from the listing.
// When the kernel's inotify queue overflows, the watcher re-checks every
// watched directory and lists the trees again, so it keeps following the
// tree; Overflows tells the caller that events were lost and it must
// rescan its own state.
//
// A removed directory's watch is removed by the watcher itself, from its
// parent's IN_DELETE or IN_MOVED_FROM (with every watch below it), and a
// reconcile every minute drops the watches of directories that are gone
// or replaced without an event: cgroupfs sends no IN_DELETE_SELF or
// IN_IGNORED, so a watch the watcher did not remove would stay in the
// kernel for good. Watches tells how many are held.
//
// Directories that exist when Watch is called are not reported.
package cgwatch
