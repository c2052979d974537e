// Package cgwatch watches cgroup directory trees with inotify and reports
// directories as they are created and removed, so the agent sees a new
// container cgroup the moment the runtime makes it. Watches follow new
// subdirectories; a directory made before its parent's watch was added is
// found by a walk right after adding it, so none is missed.
package cgwatch
