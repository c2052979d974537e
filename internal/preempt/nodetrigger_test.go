package preempt

import (
	"os"
	"strings"
	"testing"
)

// refusedFile is a file that even root cannot open for writing: a
// read-only sysfs attribute (kernfs answers EACCES whatever the
// capabilities), standing in for /proc/pressure/memory under containerd's
// AppArmor profile, which refuses the open with the same "permission
// denied". AppArmor itself cannot be loaded on this host.
const refusedFile = "/sys/kernel/uevent_seqnum"

// TestNodeTriggerFile: where /proc/pressure/memory cannot be opened for
// writing, the node trigger is armed on the root cgroup's memory.pressure
// (the same system-wide PSI group), and the start-up line says which file.
// The fixture's pressure files are symlinks: to the real
// /proc/pressure/memory where the trigger must arm (so the kernel really
// accepts it; this host is cgroup v1, so its own root has no
// memory.pressure), to a file root cannot write where it must be refused.
func TestNodeTriggerFile(t *testing.T) {
	if _, err := os.Stat("/proc/pressure/memory"); err != nil {
		t.Skip("no PSI on this kernel:", err)
	}
	if f, err := os.OpenFile(refusedFile, os.O_RDWR, 0); err == nil {
		f.Close()
		t.Skipf("%s opens for writing here: no refused file to stand in", refusedFile)
	}
	tests := []struct {
		name string
		// proc is what the fixture's /proc/pressure/memory points to;
		// cgroup sets up the fixture's cgroup root.
		proc   string
		cgroup func(f *fixture)
		// armed is the file the trigger is armed on, relative to the
		// fixture ("" polled); logs are in the engine's log.
		armed string
		logs  []string
		err   string
	}{{
		name:   "proc writable",
		proc:   "/proc/pressure/memory",
		cgroup: func(f *fixture) { f.link(f.cg+"/memory.pressure", "/proc/pressure/memory") },
		armed:  "proc/pressure/memory",
		logs:   []string{`node_pressure="psi trigger some 200000 2000000 on PROC/pressure/memory"`},
	}, {
		name:   "proc refused, cgroup v2 root",
		proc:   refusedFile,
		cgroup: func(f *fixture) { f.link(f.cg+"/memory.pressure", "/proc/pressure/memory") },
		armed:  "cgroup/memory.pressure",
		logs: []string{
			`msg="node PSI trigger armed on the root cgroup's memory.pressure (the same system-wide pressure): PROC/pressure/memory refused it" component=preempt file=CG/memory.pressure err="open PROC/pressure/memory: permission denied"`,
			`node_pressure="psi trigger some 200000 2000000 on CG/memory.pressure"`,
		},
	}, {
		name: "proc refused, cgroup namespace root",
		proc: refusedFile,
		cgroup: func(f *fixture) {
			f.link(f.cg+"/memory.pressure", "/proc/pressure/memory")
			f.write(f.cg+"/cgroup.type", "domain\n")
		},
		err: "open PROC/pressure/memory: permission denied; CG is not the host's root cgroup (it has cgroup.type: mounted inside a cgroup namespace?): its memory.pressure is not the node's",
	}, {
		name: "proc refused, cgroup v1",
		proc: refusedFile,
		cgroup: func(f *fixture) {
			must(t, os.Remove(f.cg+"/cgroup.controllers"))
			f.write(f.cg+"/memory/cgroup.procs", "")
		},
		err: "open PROC/pressure/memory: permission denied",
	}, {
		name:   "both refused",
		proc:   refusedFile,
		cgroup: func(f *fixture) { f.link(f.cg+"/memory.pressure", refusedFile) },
		err:    "open PROC/pressure/memory: permission denied; open CG/memory.pressure: permission denied",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.link(f.proc+"/pressure/memory", tc.proc)
			tc.cgroup(f)
			e := f.engine()
			e.armNode()
			defer e.closeAll()
			e.logStart()
			rel := func(s string) string {
				return strings.NewReplacer(f.proc, "PROC", f.cg, "CG").Replace(s)
			}
			logs := rel(f.logs.String())
			switch {
			case tc.armed == "" && e.nodeTrig != nil:
				t.Errorf("armed on %s, want polling", e.nodeTrig.File())
			case tc.armed != "" && e.nodeTrig == nil:
				t.Errorf("polled (%v), want a trigger on %s", e.nodeTrigErr, tc.armed)
			case tc.armed != "" && strings.TrimPrefix(e.nodeTrig.File(), f.dir()+"/") != tc.armed:
				t.Errorf("armed on %s, want %s", e.nodeTrig.File(), tc.armed)
			}
			if tc.err != "" && (e.nodeTrigErr == nil || rel(e.nodeTrigErr.Error()) != tc.err) {
				t.Errorf("error %v\nwant %s", e.nodeTrigErr, tc.err)
			}
			for _, want := range tc.logs {
				if !strings.Contains(logs, want) {
					t.Errorf("log lacks %s:\n%s", want, logs)
				}
			}
		})
	}
}

func (f *fixture) link(p, to string) {
	f.t.Helper()
	os.Remove(p)
	must(f.t, os.Symlink(to, p))
}

// dir is the fixture's top directory, holding proc and cgroup.
func (f *fixture) dir() string { return strings.TrimSuffix(f.proc, "/proc") }
