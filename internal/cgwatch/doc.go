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
// Directories that exist when Watch is called are not reported.
package cgwatch
