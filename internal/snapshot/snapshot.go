package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"podwarden/internal/cgroup"
	"podwarden/internal/oom"
	"podwarden/internal/procfs"
)

// Process is one process with the cgroup and pod it belongs to.
type Process struct {
	procfs.Proc
	// MemCgroup is the process's memory cgroup path in the hierarchy the
	// OOM killer uses: the v2 path on a v2 host, the v1 memory path
	// otherwise.
	MemCgroup string
	Owner     cgroup.Owner
}

// Snapshot is a point-in-time view of the node's processes.
type Snapshot struct {
	Procs []Process
	Mem   procfs.Meminfo
	// Cgroups is nil when no cgroup tree was given (fixture /proc only).
	Cgroups *cgroup.FS
	byPID   map[int]int
	groups  map[string]bool
}

// Take scans every process under procFS, reading fields (stat always; add
// procfs.FieldCgroup for cgroups and pod attribution). cgFS may be nil.
func Take(ctx context.Context, procFS procfs.FS, cgFS *cgroup.FS, fields procfs.Field) (*Snapshot, error) {
	// Reading /proc/PID/cgroup costs a file per process (~9 us each);
	// the cgroup tree's cgroup.procs files give the same answer for the
	// hierarchy the OOM killer uses in a read per cgroup. Processes the
	// tree did not list (started since, or a tree without cgroup.procs)
	// are read one by one.
	var byTree map[int]string
	if fields&procfs.FieldCgroup != 0 && cgFS != nil {
		// A tree without cgroup.procs (fixtures) lists nothing: then
		// every process is read from /proc.
		if m, err := cgFS.PidCgroups(ctx); err == nil && len(m) > 0 {
			byTree = m
			fields &^= procfs.FieldCgroup
		}
	}
	procs, err := procFS.Scan(ctx, fields|procfs.FieldStat)
	if err != nil {
		return nil, fmt.Errorf("scan processes: %w", err)
	}
	if byTree != nil {
		v2 := cgFS.Version() == cgroup.V2
		for i := range procs {
			p := &procs[i]
			cg, ok := byTree[p.PID]
			if !ok {
				if q, err := procFS.Read(p.PID, procfs.FieldCgroup); err == nil {
					p.Cgroup, p.CgroupV1Memory = q.Cgroup, q.CgroupV1Memory
				}
				p.Fields |= procfs.FieldCgroup
				continue
			}
			if v2 {
				p.Cgroup = cg
			} else {
				p.CgroupV1Memory = cg
			}
			p.Fields |= procfs.FieldCgroup
		}
	}
	mem, err := procFS.Meminfo()
	if err != nil {
		return nil, fmt.Errorf("read meminfo: %w", err)
	}
	s := &Snapshot{Mem: mem, Cgroups: cgFS, byPID: make(map[int]int, len(procs)), groups: map[string]bool{}}
	s.Procs = make([]Process, len(procs))
	for i, p := range procs {
		cg := memCgroup(p, cgFS)
		s.Procs[i] = Process{Proc: p, MemCgroup: cg, Owner: attribute(p)}
		s.byPID[p.PID] = i
	}
	return s, nil
}

// memCgroup picks the path the OOM killer's memcg walk uses.
func memCgroup(p procfs.Proc, cgFS *cgroup.FS) string {
	v2 := cgFS != nil && cgFS.Version() == cgroup.V2
	switch {
	case v2 && p.Cgroup != "":
		return p.Cgroup
	case p.CgroupV1Memory != "":
		return p.CgroupV1Memory
	case p.Cgroup != "":
		return p.Cgroup
	}
	return "/"
}

// attribute prefers whichever hierarchy names a pod: on hybrid hosts either
// may.
func attribute(p procfs.Proc) cgroup.Owner {
	if o := cgroup.ParsePath(p.CgroupV1Memory); o.InPod() {
		return o
	}
	return cgroup.ParsePath(p.Cgroup)
}

// Lookup returns the process with pid, if the snapshot has it.
func (s *Snapshot) Lookup(pid int) (Process, bool) {
	i, ok := s.byPID[pid]
	if !ok {
		return Process{}, false
	}
	return s.Procs[i], true
}

// TotalPages is the node OOM's totalpages: RAM + swap.
func (s *Snapshot) TotalPages() uint64 {
	return (s.Mem.MemTotal + s.Mem.SwapTotal) / oom.PageSize
}

// Task converts p to the OOM model's view.
func Task(p Process) oom.Task {
	return oom.Task{
		PID:          p.PID,
		Comm:         p.Comm,
		Adj:          p.OOMScoreAdj,
		RSSPages:     p.RSS() / oom.PageSize,
		SwapPages:    p.Swap / oom.PageSize,
		PgTableBytes: p.PgTables,
		Kernel:       p.Kernel,
		Cgroup:       p.MemCgroup,
		Pod:          p.Owner.PodUID,
	}
}

// Tasks converts every process.
func (s *Snapshot) Tasks() []oom.Task {
	out := make([]oom.Task, len(s.Procs))
	for i, p := range s.Procs {
		out[i] = Task(p)
	}
	return out
}

// GroupFlag reads memory.oom.group through the cgroup tree, once per cgroup.
// A cgroup that vanished or a v1 host counts as "not set"; other read errors
// are collected in errs so the caller can report them.
func (s *Snapshot) GroupFlag(errs *[]error) oom.GroupFlag {
	if s.Cgroups == nil || s.Cgroups.Version() != cgroup.V2 {
		return nil
	}
	return func(cg string) bool {
		if v, ok := s.groups[cg]; ok {
			return v
		}
		on, err := s.Cgroups.OOMGroup(cg)
		if err != nil && !errors.Is(err, fs.ErrNotExist) && errs != nil {
			*errs = append(*errs, err)
		}
		s.groups[cg] = on
		return on
	}
}

// Domain returns the OOM domain for cg ("" or "/" for the node). A cgroup
// OOM's totalpages is its limit plus the swap it may use
// (mem_cgroup_get_max); an unlimited cgroup cannot hit an OOM of its own.
func (s *Snapshot) Domain(cg string) (oom.Domain, error) {
	if cg == "" || cg == "/" {
		return oom.Domain{TotalPages: s.TotalPages()}, nil
	}
	if s.Cgroups == nil {
		return oom.Domain{}, fmt.Errorf("cgroup %s: no cgroup root to read its limit from", cg)
	}
	lim, err := s.Cgroups.Limit(cg)
	if err != nil {
		return oom.Domain{}, fmt.Errorf("read limit of cgroup %s: %w", cg, err)
	}
	if lim.Unlimited {
		return oom.Domain{}, fmt.Errorf("cgroup %s has no memory limit, so only a node OOM can kill in it", cg)
	}
	total := lim.Bytes / oom.PageSize
	if swap, err := s.Cgroups.SwapLimit(cg); err == nil {
		usable := s.Mem.SwapTotal
		if !swap.Unlimited {
			usable = min(usable, swap.Bytes)
		}
		total += usable / oom.PageSize
	}
	return oom.Domain{Cgroup: cg, TotalPages: total}, nil
}
