package cgroup

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "update golden files")

// cgroupReport is everything the package reads about one cgroup, so the
// golden file shows at a glance what each layout and hierarchy yields.
type cgroupReport struct {
	Cgroup    string    `json:"cgroup"`
	Owner     *Owner    `json:"owner,omitempty"`
	Limit     *Limit    `json:"limit,omitempty"`
	SwapLimit *Limit    `json:"swap_limit,omitempty"`
	Usage     *uint64   `json:"usage,omitempty"`
	Events    *Events   `json:"events,omitempty"`
	Pressure  *Pressure `json:"pressure,omitempty"`
	OOMGroup  *bool     `json:"oom_group,omitempty"`
	Procs     []int     `json:"procs,omitempty"`
	Errors    []string  `json:"errors,omitempty"`
}

// TestGolden walks each fixture tree and compares a report of every cgroup
// with testdata/<tree>.golden.json. Run with -update after changing a tree.
func TestGolden(t *testing.T) {
	for _, tree := range []string{"v1-cgroupfs", "v2-systemd", "v2-cgroupfs", "hybrid-systemd"} {
		t.Run(tree, func(t *testing.T) {
			f := fixture(t, tree)
			var reports []cgroupReport
			err := f.Walk(context.Background(), "/", func(cg string) error {
				reports = append(reports, report(f, cg))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(struct {
				Version string         `json:"version"`
				Cgroups []cgroupReport `json:"cgroups"`
			}{f.Version().String(), reports}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", tree+".golden.json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs; rerun with -update and review the diff\ngot:\n%s", golden, got)
			}
		})
	}
}

func report(f FS, cg string) cgroupReport {
	r := cgroupReport{Cgroup: cg}
	keep := func(what string, err error) bool {
		if err != nil {
			// Relative to the tree, so the file does not depend on where
			// the test runs.
			r.Errors = append(r.Errors, what+": "+strings.ReplaceAll(err.Error(), f.Root(), "ROOT"))
			return false
		}
		return true
	}
	if o := ParsePath(cg); o.InPod() {
		r.Owner = &o
	}
	if l, err := f.Limit(cg); keep("limit", err) {
		r.Limit = &l
	}
	if l, err := f.SwapLimit(cg); keep("swap_limit", err) {
		r.SwapLimit = &l
	}
	if u, err := f.Usage(cg); keep("usage", err) {
		r.Usage = &u
	}
	if e, err := f.Events(cg); keep("events", err) {
		r.Events = &e
	}
	if p, err := f.Pressure(cg); keep("pressure", err) {
		r.Pressure = &p
	}
	if g, err := f.OOMGroup(cg); keep("oom_group", err) {
		r.OOMGroup = &g
	}
	if p, err := f.Procs(cg, false); keep("procs", err) {
		r.Procs = p
	}
	return r
}
