package cri

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// CgroupPath converts the cgroupsPath of an OCI runtime spec, as kubelet and
// the runtime set it, to the path the kernel prints in /proc/PID/cgroup
// (relative to the cgroup root, starting with "/").
//
// Two forms exist, chosen by kubelet's cgroup driver:
//
//	systemd:  "kubepods-burstable-pod<uid_>.slice:cri-containerd:<id>"
//	          → /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope
//	cgroupfs: "/kubepods/burstable/pod<uid>/<id>" → unchanged (cleaned)
//
// The systemd form is "slice:prefix:name"; runc and crun expand the slice the
// way systemd does (every dash-separated prefix of a slice name is its
// parent) and name the unit "<prefix>-<name>.scope". crun may put the
// processes one level deeper (a "container" sub-cgroup), so compare with a
// prefix match, not equality. A host namespace or nested setup with a
// non-root cgroup namespace also shifts the path; CgroupPath does not guess.
func CgroupPath(cgroupsPath string) (string, error) {
	if cgroupsPath == "" {
		return "", errors.New("empty cgroupsPath")
	}
	if strings.HasPrefix(cgroupsPath, "/") || !strings.Contains(cgroupsPath, ":") {
		if !strings.HasPrefix(cgroupsPath, "/") {
			// runc joins a relative path to its own cgroup, which podwarden
			// cannot know; kubelet never sends one.
			return "", fmt.Errorf("cgroupsPath %q is neither absolute nor slice:prefix:name", cgroupsPath)
		}
		return path.Clean(cgroupsPath), nil
	}
	parts := strings.Split(cgroupsPath, ":")
	if len(parts) != 3 {
		return "", fmt.Errorf("systemd cgroupsPath %q: want slice:prefix:name", cgroupsPath)
	}
	slice, prefix, name := parts[0], parts[1], parts[2]
	if slice == "" {
		// runc's default parent for the systemd driver.
		slice = "system.slice"
	}
	dir, err := expandSlice(slice)
	if err != nil {
		return "", fmt.Errorf("systemd cgroupsPath %q: %w", cgroupsPath, err)
	}
	if name == "" || strings.Contains(name, "/") || strings.Contains(prefix, "/") {
		return "", fmt.Errorf("systemd cgroupsPath %q: bad unit name", cgroupsPath)
	}
	unit := name
	// runc: a name that is already a slice is used as is; otherwise it
	// becomes a scope, with the prefix only when there is one.
	if !strings.HasSuffix(name, ".slice") {
		if prefix != "" {
			unit = prefix + "-" + name + ".scope"
		} else {
			unit = name + ".scope"
		}
	}
	return path.Join(dir, unit), nil
}

// expandSlice turns "a-b-c.slice" into "/a.slice/a-b.slice/a-b-c.slice", as
// systemd and runc's ExpandSlice do. "-.slice" is the root slice.
func expandSlice(slice string) (string, error) {
	const suffix = ".slice"
	if !strings.HasSuffix(slice, suffix) || len(slice) == len(suffix) {
		return "", fmt.Errorf("slice %q does not end in %s", slice, suffix)
	}
	if strings.Contains(slice, "/") {
		return "", fmt.Errorf("slice %q contains a slash", slice)
	}
	base := strings.TrimSuffix(slice, suffix)
	if base == "-" {
		return "/", nil
	}
	var b strings.Builder
	prefix := ""
	for _, comp := range strings.Split(base, "-") {
		if comp == "" {
			return "", fmt.Errorf("slice %q has an empty component", slice)
		}
		b.WriteString("/" + prefix + comp + suffix)
		prefix += comp + "-"
	}
	return b.String(), nil
}
