package cgroup

import (
	"fmt"
	"io"
	"strings"
)

// MemStat is the part of memory.stat that says how much of a cgroup's
// usage the kernel can take back without killing anything, in bytes, for
// the cgroup and everything below it.
type MemStat struct {
	// Anon is anonymous memory (heap, stacks, private mappings): without
	// swap only an exit frees it.
	Anon uint64 `json:"anon"`
	// File is page cache, shmem and tmpfs included.
	File uint64 `json:"file"`
	// Shmem is tmpfs, shared anonymous mappings and SysV shm: counted in
	// File, but only swap relieves it.
	Shmem        uint64 `json:"shmem"`
	ActiveFile   uint64 `json:"active_file"`
	InactiveFile uint64 `json:"inactive_file"`
}

// Reclaimable is the page cache reclaim can drop or write back: file pages
// that are not shmem.
func (s MemStat) Reclaimable() uint64 {
	if s.Shmem >= s.File {
		return 0
	}
	return s.File - s.Shmem
}

// Committed is what of usage stays charged until a process exits or frees
// it: usage minus reclaimable page cache. Kernel memory (slab, page
// tables, sockets) is part of it, as it is of usage.
func (s MemStat) Committed(usage uint64) uint64 {
	r := s.Reclaimable()
	if r >= usage {
		return 0
	}
	return usage - r
}

// MemStat reads cg's memory.stat. v1 reports the hierarchical total_*
// counters, so both versions cover the cgroup's whole subtree.
func (fs FS) MemStat(cg string) (MemStat, error) {
	b, file, err := fs.readOptional(cg, "memory.stat")
	if err != nil {
		return MemStat{}, err
	}
	s, err := ParseMemStat(strings.NewReader(string(b)), fs.version)
	if err != nil {
		return MemStat{}, fmt.Errorf("parse %s: %w", file, err)
	}
	return s, nil
}

// ParseMemStat parses a memory.stat file of hierarchy version v: "key
// value" lines; unknown keys are skipped, as kernels add them over time.
// v1 (and Hybrid, whose memory controller is v1) uses the total_* keys.
func ParseMemStat(r io.Reader, v Version) (MemStat, error) {
	var s MemStat
	keys := map[string]*uint64{
		"anon": &s.Anon, "file": &s.File, "shmem": &s.Shmem,
		"active_file": &s.ActiveFile, "inactive_file": &s.InactiveFile,
	}
	if v != V2 {
		keys = map[string]*uint64{
			"total_rss": &s.Anon, "total_cache": &s.File, "total_shmem": &s.Shmem,
			"total_active_file": &s.ActiveFile, "total_inactive_file": &s.InactiveFile,
		}
	}
	err := parseKV(r, func(k string, v uint64) {
		if p := keys[k]; p != nil {
			*p = v
		}
	})
	return s, err
}
