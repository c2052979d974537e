package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"podwarden/internal/cgroup"
	"podwarden/internal/procfs"
	"podwarden/internal/snapshot"
)

// NodeFlags are the host roots every node-reading command takes, so the
// same command runs on fixture trees and inside a container with the host's
// /proc mounted elsewhere.
type NodeFlags struct {
	ProcRoot   string
	CgroupRoot string
}

func (f *NodeFlags) Register(fs *pflag.FlagSet) {
	fs.StringVar(&f.ProcRoot, "proc-root", "/proc", "where the host's proc filesystem is mounted")
	fs.StringVar(&f.CgroupRoot, "cgroup-root", "/sys/fs/cgroup", `where the host's cgroup tree is mounted ("" to skip cgroup reads)`)
}

// open returns the proc filesystem and, when the cgroup root exists, the
// cgroup tree. A missing cgroup root is not an error for read-only views:
// attribution works from /proc/PID/cgroup alone.
func (f *NodeFlags) open() (procfs.FS, *cgroup.FS, error) {
	pfs, err := procfs.NewFS(f.ProcRoot)
	if err != nil {
		return procfs.FS{}, nil, fmt.Errorf("--proc-root: %w", err)
	}
	if f.CgroupRoot == "" {
		return pfs, nil, nil
	}
	if _, err := os.Stat(f.CgroupRoot); err != nil {
		return pfs, nil, nil
	}
	cfs, err := cgroup.NewFS(f.CgroupRoot)
	if err != nil {
		return procfs.FS{}, nil, fmt.Errorf("--cgroup-root: %w", err)
	}
	return pfs, &cfs, nil
}

func (f *NodeFlags) snapshot(ctx context.Context, fields procfs.Field) (*snapshot.Snapshot, error) {
	pfs, cfs, err := f.open()
	if err != nil {
		return nil, err
	}
	return snapshot.Take(ctx, pfs, cfs, fields)
}
