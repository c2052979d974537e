package cgroup

import "strings"

// Paths here are cgroup paths as /proc/PID/cgroup prints them: absolute,
// "/"-separated, "/" for the root. The helpers are plain string work, so
// the pure packages (oom) and the readers (agent, preempt) share one
// meaning of "above" and "below".

// Parent is the cgroup above p: "/" for a top-level cgroup, and for a path
// with no "/" after its first byte.
func Parent(p string) string {
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		return p[:i]
	}
	return "/"
}

// Within reports whether path is cg or lies below it. Every path is within
// the root, "/" or "". "/a/bc" is not within "/a/b".
func Within(path, cg string) bool {
	if cg == "/" || cg == "" {
		return true
	}
	return path == cg || len(path) > len(cg) && path[len(cg)] == '/' && strings.HasPrefix(path, cg)
}

// Base is the last element of p: a container cgroup's directory name ("" for
// the root).
func Base(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

// UnitID is the name of a container cgroup's directory without the systemd
// ".scope" suffix and a runtime's prefix (cri-containerd-, crio-, docker-),
// whatever the rest looks like: the runtime's container list, not the
// name's shape, says whether it is an id. CRI-O's conmon scope gives
// "conmon-<id>", which no runtime lists.
func UnitID(name string) string {
	name = strings.TrimSuffix(name, ".scope")
	for _, k := range scopePrefixes {
		if id, ok := strings.CutPrefix(name, k.prefix); ok && !k.conmon {
			return id
		}
	}
	return name
}
