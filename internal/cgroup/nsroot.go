package cgroup

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
)

// Resolver turns cgroup paths read from /proc/PID/cgroup into paths of the
// host tree. A container with a private cgroup namespace (containerd's
// default for unprivileged containers on cgroup v2) sees every path relative
// to its own cgroup, e.g. "/../../burstable/pod<uid>/<id>", even with
// hostPID and the host's tree mounted.
type Resolver struct {
	// Root is the host path of the reader's cgroup namespace root; "/"
	// when it shares the host's namespace.
	Root string
}

// Host returns the host-tree path of p, a path as /proc/PID/cgroup shows it
// to the reader.
func (r Resolver) Host(p string) string {
	if p == "" || r.Root == "" || r.Root == "/" {
		return p
	}
	return path.Clean(r.Root + "/" + p)
}

// NewResolver finds where the namespace of process selfPID lies in the host
// tree: selfPath is its own cgroup path as /proc/self/cgroup shows it. If
// that path holds selfPID, the namespaces agree; otherwise the tree is
// searched for the cgroup whose cgroup.procs lists selfPID (selfPID must be
// the host PID, which hostPID gives).
func (fs FS) NewResolver(ctx context.Context, selfPID int, selfPath string) (Resolver, error) {
	if !strings.Contains(selfPath, "..") {
		if pids, err := fs.Procs(selfPath, false); err == nil && slices.Contains(pids, selfPID) {
			return Resolver{Root: "/"}, nil
		}
	}
	byPID, err := fs.PidCgroups(ctx)
	if err != nil {
		return Resolver{}, fmt.Errorf("search cgroup tree for pid %d: %w", selfPID, err)
	}
	found := byPID[selfPID]
	if found == "" {
		return Resolver{}, fmt.Errorf("pid %d is in no cgroup under %s: is the host's cgroup tree mounted there?", selfPID, fs.Dir("/"))
	}
	// found is selfPath seen from the host: strip selfPath's tail.
	rel := path.Clean("/" + selfPath)
	root := found
	if rel != "/" {
		if !strings.HasSuffix(found, rel) {
			return Resolver{}, fmt.Errorf("own cgroup %s is at %s in the host tree: cannot derive the namespace root", rel, found)
		}
		root = path.Clean("/" + strings.TrimSuffix(found, rel))
	}
	return Resolver{Root: root}, nil
}

// PidCgroups maps every process listed in the tree's cgroup.procs files to
// its cgroup: one read per cgroup instead of one /proc/PID/cgroup per
// process. A cgroup removed mid-walk is skipped.
func (fs FS) PidCgroups(ctx context.Context) (map[int]string, error) {
	out := map[int]string{}
	err := fs.Walk(ctx, "/", func(cg string) error {
		pids, err := fs.Procs(cg, false)
		if err != nil {
			return nil // removed mid-walk, or no cgroup.procs here
		}
		for _, pid := range pids {
			out[pid] = cg
		}
		return nil
	})
	return out, err
}
