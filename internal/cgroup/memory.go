package cgroup

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// Limit is a memory or swap limit.
type Limit struct {
	Bytes     uint64 `json:"bytes,omitempty"`
	Unlimited bool   `json:"unlimited,omitempty"`
}

func (l Limit) String() string {
	if l.Unlimited {
		return "max"
	}
	return strconv.FormatUint(l.Bytes, 10)
}

// v1Unlimited is where v1 limits stop meaning anything. An unlimited v1
// cgroup reads PAGE_COUNTER_MAX pages in bytes: 0x7FFFFFFFFFFFF000 with 4 KiB
// pages, 0x7FFFFFFFFFFF0000 with 64 KiB pages, and a 32-bit kernel shows yet
// another value; no real limit comes near 4 EiB, so one threshold covers all.
const v1Unlimited = 1 << 62

// OOMGroup reports memory.oom.group: whether an OOM kill in cg takes the
// whole cgroup. Only cgroup v2 has it; V1 and Hybrid (whose memory
// controller is v1) give an error wrapping errors.ErrUnsupported, as does a
// kernel older than 4.19.
func (fs FS) OOMGroup(cg string) (bool, error) {
	if fs.version != V2 {
		return false, fmt.Errorf("memory.oom.group on cgroup %s: %w", fs.version, errors.ErrUnsupported)
	}
	b, file, err := fs.readOptional(cg, "memory.oom.group")
	if err != nil {
		return false, err
	}
	switch strings.TrimSpace(string(b)) {
	case "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, fmt.Errorf("parse %s: unexpected %q", file, strings.TrimSpace(string(b)))
}

// SetOOMGroup writes memory.oom.group and reads it back. The read-back
// catches writes the kernel accepts but does not apply, and, on fixture
// trees, a file that is not what it seems.
func (fs FS) SetOOMGroup(cg string, on bool) error {
	if fs.version != V2 {
		return fmt.Errorf("memory.oom.group on cgroup %s: %w", fs.version, errors.ErrUnsupported)
	}
	d, err := fs.dir(cg)
	if err != nil {
		return err
	}
	want := "0"
	if on {
		want = "1"
	}
	file := filepath.Join(d, "memory.oom.group")
	if err := write(file, want); err != nil {
		if !isFileOrGone(file) && isDir(d) {
			return fmt.Errorf("write %s: %w", file, errors.ErrUnsupported)
		}
		return err
	}
	got, err := fs.OOMGroup(cg)
	if err != nil {
		return err
	}
	if got != on {
		return fmt.Errorf("write %s: wrote %s, reads back %v", file, want, got)
	}
	return nil
}

// isFileOrGone separates "this kernel has no such file" from "the write
// failed for another reason" after a failed write.
func isFileOrGone(file string) bool { return isFile(file) || !isDir(filepath.Dir(file)) }

// Limit is cg's memory limit: memory.max on v2, memory.limit_in_bytes on v1.
// The v2 root cgroup has no memory.max and is reported unlimited.
func (fs FS) Limit(cg string) (Limit, error) {
	if fs.version != V2 {
		return fs.readLimitV1(cg, "memory.limit_in_bytes")
	}
	if path.Clean("/"+cg) == "/" {
		return Limit{Unlimited: true}, checkPath(cg)
	}
	return fs.readLimitV2(cg, "memory.max")
}

// SwapLimit is how much swap cg may use on top of its memory limit. v2 reads
// memory.swap.max. v1 only limits memory+swap together, so it reports
// memory.memsw.limit_in_bytes minus memory.limit_in_bytes. Without swap
// accounting (the file is absent) nothing limits swap, so it is Unlimited.
func (fs FS) SwapLimit(cg string) (Limit, error) {
	if fs.version == V2 {
		l, err := fs.readLimitV2(cg, "memory.swap.max")
		if errors.Is(err, errors.ErrUnsupported) {
			return Limit{Unlimited: true}, nil
		}
		return l, err
	}
	memsw, err := fs.readLimitV1(cg, "memory.memsw.limit_in_bytes")
	if errors.Is(err, errors.ErrUnsupported) {
		return Limit{Unlimited: true}, nil
	}
	if err != nil || memsw.Unlimited {
		return memsw, err
	}
	mem, err := fs.readLimitV1(cg, "memory.limit_in_bytes")
	if err != nil {
		return Limit{}, err
	}
	if mem.Unlimited || memsw.Bytes <= mem.Bytes {
		// The kernel keeps memsw >= mem; equal means no swap at all.
		return Limit{}, nil
	}
	return Limit{Bytes: memsw.Bytes - mem.Bytes}, nil
}

// Usage is cg's charged memory in bytes: memory.current on v2,
// memory.usage_in_bytes on v1 (which includes page cache, as the limit does).
func (fs FS) Usage(cg string) (uint64, error) {
	name := "memory.usage_in_bytes"
	if fs.version == V2 {
		name = "memory.current"
	}
	// The v2 root, and a child whose parent has not enabled the memory
	// controller, have no such file: that is unsupported, not gone.
	b, file, err := fs.readOptional(cg, name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", file, err)
	}
	return n, nil
}

func (fs FS) readLimitV2(cg, name string) (Limit, error) {
	b, file, err := fs.readOptional(cg, name)
	if err != nil {
		return Limit{}, err
	}
	l, err := parseLimitV2(string(b))
	if err != nil {
		return Limit{}, fmt.Errorf("parse %s: %w", file, err)
	}
	return l, nil
}

func (fs FS) readLimitV1(cg, name string) (Limit, error) {
	b, file, err := fs.readOptional(cg, name)
	if err != nil {
		return Limit{}, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return Limit{}, fmt.Errorf("parse %s: %w", file, err)
	}
	if n >= v1Unlimited {
		return Limit{Unlimited: true}, nil
	}
	return Limit{Bytes: n}, nil
}

func parseLimitV2(s string) (Limit, error) {
	s = strings.TrimSpace(s)
	if s == "max" {
		return Limit{Unlimited: true}, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return Limit{}, err
	}
	return Limit{Bytes: n}, nil
}
