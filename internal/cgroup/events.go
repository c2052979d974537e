package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Events are a cgroup's memory event counters. v2 fills them from
// memory.events; v1 has only memory.oom_control (UnderOOM, OOMKill,
// OOMKillDisabled) plus memory.failcnt and memory.memsw.failcnt, whose sum
// is reported as Max because both count charges that hit a limit.
type Events struct {
	Low          uint64 `json:"low"`
	High         uint64 `json:"high"`
	Max          uint64 `json:"max"`
	OOM          uint64 `json:"oom"`
	OOMKill      uint64 `json:"oom_kill"`
	OOMGroupKill uint64 `json:"oom_group_kill"` // 5.17+
	// UnderOOM is v1's under_oom: tasks are stalled in the OOM path, which
	// only lasts while oom_kill_disable is set or a kill is in progress.
	UnderOOM bool `json:"under_oom,omitempty"`
	// OOMKillDisabled is v1's oom_kill_disable: the kernel stalls tasks at
	// the limit instead of killing one, so the OOM killer never picks.
	OOMKillDisabled bool `json:"oom_kill_disabled,omitempty"`
}

// Events reads cg's memory event counters (memory.events on v2,
// memory.oom_control and the failcnt files on v1 and Hybrid).
func (fs FS) Events(cg string) (Events, error) {
	if fs.version == V2 {
		b, file, err := fs.readOptional(cg, "memory.events")
		if err != nil {
			return Events{}, err
		}
		ev, err := ParseEvents(strings.NewReader(string(b)))
		if err != nil {
			return Events{}, fmt.Errorf("parse %s: %w", file, err)
		}
		return ev, nil
	}
	b, file, err := fs.readOptional(cg, "memory.oom_control")
	if err != nil {
		return Events{}, err
	}
	ev, err := ParseOOMControl(strings.NewReader(string(b)))
	if err != nil {
		return Events{}, fmt.Errorf("parse %s: %w", file, err)
	}
	// v1 charges memory+swap first and memory second, and a failure stops
	// the charge: a hit on either limit bumps at most one of the two
	// failcnt files, so their sum counts the limit hits v2 calls "max".
	// Since 6.13 the kernel keeps only memory.failcnt (track_failcnt), so
	// hits on a memory+swap limit no longer show.
	for _, name := range []string{"memory.failcnt", "memory.memsw.failcnt"} {
		b, file, err := fs.readOptional(cg, name)
		if errors.Is(err, errors.ErrUnsupported) {
			continue // memsw files exist only with swap accounting
		}
		if err != nil {
			return Events{}, err
		}
		n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return Events{}, fmt.Errorf("parse %s: %w", file, err)
		}
		ev.Max += n
	}
	return ev, nil
}

// ParseEvents parses a v2 memory.events (or memory.events.local) file:
// "key value" lines. Keys it does not know are skipped, since kernels add
// them over time; a malformed line is an error.
func ParseEvents(r io.Reader) (Events, error) {
	var ev Events
	err := parseKV(r, func(k string, v uint64) {
		switch k {
		case "low":
			ev.Low = v
		case "high":
			ev.High = v
		case "max":
			ev.Max = v
		case "oom":
			ev.OOM = v
		case "oom_kill":
			ev.OOMKill = v
		case "oom_group_kill":
			ev.OOMGroupKill = v
		}
	})
	return ev, err
}

// ParseOOMControl parses a v1 memory.oom_control file ("oom_kill_disable
// 0", "under_oom 0", and from 4.13 "oom_kill N").
func ParseOOMControl(r io.Reader) (Events, error) {
	var ev Events
	err := parseKV(r, func(k string, v uint64) {
		switch k {
		case "oom_kill_disable":
			ev.OOMKillDisabled = v != 0
		case "under_oom":
			ev.UnderOOM = v != 0
		case "oom_kill":
			ev.OOMKill = v
		}
	})
	return ev, err
}

// parseKV reads "key value" lines with unsigned decimal values.
func parseKV(r io.Reader, set func(k string, v uint64)) error {
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return fmt.Errorf("line %d: want \"key value\", got %q", n, line)
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return fmt.Errorf("line %d: %s: %w", n, f[0], err)
		}
		set(f[0], v)
	}
	return sc.Err()
}
