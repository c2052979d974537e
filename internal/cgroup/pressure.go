package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// PSILine is one line of a pressure file: the share of wall time in which
// tasks stalled on memory, as percentages averaged over 10 s, 60 s and
// 300 s, and the total stall time in microseconds.
type PSILine struct {
	Avg10  float64 `json:"avg10"`
	Avg60  float64 `json:"avg60"`
	Avg300 float64 `json:"avg300"`
	Total  uint64  `json:"total"`
}

// Pressure is a memory pressure file: Some is time in which at least one
// task stalled, Full time in which all non-idle tasks did (what
// systemd-oomd acts on).
type Pressure struct {
	Some PSILine `json:"some"`
	Full PSILine `json:"full"`
}

// Pressure reads cg's memory.pressure. PSI exists only in the v2 hierarchy:
// on Hybrid it is read from <root>/unified at the same path, which exists
// when systemd created the cgroup (it mirrors its units there) but not for
// cgroups made by the cgroupfs driver; that case, pure V1, and a kernel
// without PSI give an error wrapping errors.ErrUnsupported.
func (fs FS) Pressure(cg string) (Pressure, error) {
	file, err := fs.PressureFile(cg)
	if err != nil {
		return Pressure{}, err
	}
	return ReadPressure(file)
}

// PressureFile is the path of cg's memory.pressure, for reading or for a
// PSI trigger (OpenTrigger). Errors are those of Pressure.
func (fs FS) PressureFile(cg string) (string, error) {
	switch fs.version {
	case V1:
		return "", fmt.Errorf("memory.pressure on cgroup v1: %w", errors.ErrUnsupported)
	case Hybrid:
		d, err := fs.dir(cg)
		if err != nil {
			return "", err
		}
		file := filepath.Join(fs.root, "unified", filepath.Clean("/"+cg), "memory.pressure")
		if !isDir(filepath.Dir(file)) {
			if !isDir(d) {
				return "", opError("read", file, os.ErrNotExist)
			}
			return "", fmt.Errorf("read %s: not in the unified hierarchy: %w", file, errors.ErrUnsupported)
		}
		return file, nil
	}
	d, err := fs.dir(cg)
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "memory.pressure"), nil
}

// ReadPressure reads a PSI file: a cgroup's memory.pressure or the node's
// /proc/pressure/memory. A file missing from a directory that exists (a
// kernel booted with psi=0 or built without CONFIG_PSI) gives an error
// wrapping errors.ErrUnsupported.
func ReadPressure(file string) (Pressure, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		err = opError("read", file, err)
		if errors.Is(err, os.ErrNotExist) && isDir(filepath.Dir(file)) {
			err = fmt.Errorf("read %s: %w", file, errors.ErrUnsupported)
		}
		return Pressure{}, err
	}
	p, err := ParsePressure(strings.NewReader(string(b)))
	if err != nil {
		return Pressure{}, fmt.Errorf("parse %s: %w", file, err)
	}
	return p, nil
}

// ParsePressure parses a PSI file (/proc/pressure/memory or a cgroup's
// memory.pressure):
//
//	some avg10=0.00 avg60=0.00 avg300=0.00 total=0
//	full avg10=0.00 avg60=0.00 avg300=0.00 total=0
//
// Fields are found by name. A missing "full" line (cpu pressure before 5.13)
// leaves Full zero; other line kinds and unknown fields are skipped.
func ParsePressure(r io.Reader) (Pressure, error) {
	var p Pressure
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		var l *PSILine
		switch f[0] {
		case "some":
			l = &p.Some
		case "full":
			l = &p.Full
		default:
			continue
		}
		if err := parsePSILine(f[1:], l); err != nil {
			return Pressure{}, fmt.Errorf("line %d: %w", n, err)
		}
	}
	return p, sc.Err()
}

func parsePSILine(fields []string, l *PSILine) error {
	// seen has one bit per required field, so a repeated field cannot
	// stand in for a missing one.
	var seen uint
	for _, kv := range fields {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("field %q: want key=value", kv)
		}
		var avg *float64
		var bit uint
		switch k {
		case "avg10":
			avg, bit = &l.Avg10, 1<<0
		case "avg60":
			avg, bit = &l.Avg60, 1<<1
		case "avg300":
			avg, bit = &l.Avg300, 1<<2
		case "total":
			t, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return fmt.Errorf("total: %w", err)
			}
			l.Total = t
			seen |= 1 << 3
			continue
		default:
			continue
		}
		x, err := strconv.ParseFloat(v, 64)
		// ParseFloat accepts "NaN", "Inf" and exponents; the kernel prints
		// a percentage with two decimals, so anything outside 0..100 is a
		// corrupt line, not a value to hand to threshold comparisons.
		if err != nil || math.IsNaN(x) || x < 0 || x > 100 {
			return fmt.Errorf("%s: bad percentage %q", k, v)
		}
		*avg = x
		seen |= bit
	}
	if seen != 1<<4-1 {
		return fmt.Errorf("want avg10, avg60, avg300 and total in %q", strings.Join(fields, " "))
	}
	return nil
}
