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

// viewFlags are the flags of the views of this node's processes (ps,
// victims): the host roots, how pods are named, the namespace and cgroup to
// look at, and how to print.
type viewFlags struct {
	node      NodeFlags
	pods      *podFlags
	namespace string
	cgroup    string
	output    string
	noHeaders bool
}

// viewHelp is what one view's flags say: each narrows by namespace and
// cgroup, and prints, in its own way.
type viewHelp struct {
	namespace, cgroup string
	output, outputs   string // the default -o, and every one it takes
	noHeaders         string // the outputs that have a header line
}

func (f *viewFlags) register(fs *pflag.FlagSet, pods *podSource, h viewHelp) {
	f.node.Register(fs)
	f.pods = pods.register(fs)
	fs.StringVarP(&f.namespace, "namespace", "n", "", h.namespace)
	fs.StringVar(&f.cgroup, "cgroup", "", h.cgroup)
	fs.StringVarP(&f.output, "output", "o", h.output, "output format: "+h.outputs)
	fs.BoolVar(&f.noHeaders, "no-headers", false, h.noHeaders+": do not print the header line")
}
