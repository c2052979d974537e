package preempt

import (
	"slices"
	"testing"
	"time"

	"podwarden/internal/policy"
	"podwarden/internal/procfs"
)

// proc is a process of a test container: pid, parent, name, private
// memory in MiB; start follows the pid, as on a real system.
func proc(pid, ppid int, comm string, mib uint64, cmdline ...string) procfs.Proc {
	return procfs.Proc{PID: pid, PPID: ppid, Comm: comm, State: 'S', StartTime: uint64(1000 + pid), RSSAnon: mib << 20, Cmdline: cmdline}
}

// notebook is the pod: tini (init, parent outside), the server,
// a flat kernel of 120 MiB and a shell.
func notebook() []procfs.Proc {
	return []procfs.Proc{
		proc(10, 1, "tini", 1, "/usr/bin/tini", "--", "start.sh"),
		proc(11, 10, "jupyter-lab", 60, "/opt/conda/bin/python3.11", "/opt/conda/bin/jupyter-lab"),
		proc(12, 11, "python3", 120, "/opt/conda/bin/python3", "-m", "ipykernel_launcher"),
		proc(13, 11, "bash", 4, "/bin/bash"),
	}
}

// snapshots feeds snapshots 2 s apart, the last at now, and returns the
// history as the engine would hold it.
func snapshots(now time.Time, snaps ...[]procfs.Proc) *procHist {
	ph := &procHist{}
	for i, s := range snaps {
		ph.add(now.Add(-time.Duration(len(snaps)-1-i)*2*time.Second), s, 30*time.Second)
	}
	return ph
}

// with returns procs plus extra, replacing processes of the same pid.
func with(procs []procfs.Proc, extra ...procfs.Proc) []procfs.Proc {
	out := slices.Clone(procs)
	for _, x := range extra {
		if i := slices.IndexFunc(out, func(p procfs.Proc) bool { return p.PID == x.PID }); i >= 0 {
			out[i] = x
		} else {
			out = append(out, x)
		}
	}
	return out
}

// TestAttributeHostile: what a pod does to itself never moves the choice
// off the process that grew, and never onto a bystander.
func TestAttributeHostile(t *testing.T) {
	now := time.Unix(10_000, 0)
	nb := notebook()
	// A hog started by the user's shell, calling itself name, grows from
	// 10 to 600 MiB over three snapshots.
	hog := func(comm string, cmdline ...string) [][]procfs.Proc {
		return [][]procfs.Proc{
			with(nb, proc(20, 13, comm, 10, cmdline...)),
			with(nb, proc(20, 13, comm, 300, cmdline...)),
			with(nb, proc(20, 13, comm, 600, cmdline...)),
		}
	}
	// A parent forking 40 MiB children, three per snapshot.
	storm := func(parent int) [][]procfs.Proc {
		// Calm first: the server is known, and flat, before the storm.
		snaps := [][]procfs.Proc{nb, nb, nb}
		cur := with(nb, proc(30, 13, "make", 8, "make", "-j"))
		for s := range 4 {
			for c := range 3 {
				pid := 31 + 3*s + c
				cur = with(cur, proc(pid, parent, "cc1", 40, "/usr/lib/gcc/cc1"))
			}
			snaps = append(snaps, slices.Clone(cur))
		}
		return snaps
	}
	tests := []struct {
		name        string
		snaps       [][]procfs.Proc
		wantMembers []int
		wantFamily  bool
		wantKept    []int
	}{
		{name: "hog renamed jupyter-lab by prctl", snaps: hog("jupyter-lab"), wantMembers: []int{20}},
		{name: "hog named sshd by exec -a", snaps: hog("python3", "sshd: ada [priv]"), wantMembers: []int{20}},
		{name: "hog run from a file named systemd", snaps: hog("systemd", "/tmp/x/systemd", "--user"), wantMembers: []int{20}},
		{name: "hog named jupyterhub-singleuser, cut to 15", snaps: hog("jupyterhub-sing", "jupyterhub-singleuser"), wantMembers: []int{20}},
		{
			// unshare --pid --fork: the hog is pid 1 of its own namespace,
			// its parent (unshare) inside the container.
			name: "hog is pid 1 of an inner pid namespace",
			snaps: func() [][]procfs.Proc {
				var out [][]procfs.Proc
				for _, s := range hog("python3") {
					s = with(s, proc(19, 13, "unshare", 1, "unshare", "--pid", "--fork", "python3"))
					for i := range s {
						if s[i].PID == 20 {
							s[i].PPID, s[i].NSPID = 19, 1
						}
					}
					out = append(out, s)
				}
				return out
			}(),
			wantMembers: []int{20},
		},
		{
			name: "the server itself grows",
			snaps: [][]procfs.Proc{nb, with(nb, proc(11, 10, "jupyter-lab", 400, "/opt/conda/bin/python3.11", "/opt/conda/bin/jupyter-lab")),
				with(nb, proc(11, 10, "jupyter-lab", 700, "/opt/conda/bin/python3.11", "/opt/conda/bin/jupyter-lab"))},
			wantMembers: []int{11},
		},
		{
			name:        "fork storm: the parent and its children, once",
			snaps:       storm(30),
			wantMembers: []int{30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42},
			wantFamily:  true,
		},
		{
			// The kept server (old, flat, its name in the keep list) forks
			// the storm: the children go, the server and its flat kernel stay.
			name:        "fork storm from the kept server",
			snaps:       storm(11),
			wantMembers: []int{31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42},
			wantFamily:  true,
			wantKept:    []int{11},
		},
		{
			// make (8 MiB, new) is below the bar: a small process started
			// meanwhile is not swept up with the storm.
			name:        "fork storm from the container's init",
			snaps:       storm(10),
			wantMembers: []int{31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42},
			wantFamily:  true,
			wantKept:    []int{10, 11},
		},
		{name: "everything flat", snaps: [][]procfs.Proc{nb, nb, nb}},
		{
			// The holder filled 600 MiB more than the window ago and has
			// been flat since: its start is not growth now.
			name: "holder filled before the window",
			snaps: append([][]procfs.Proc{with(nb, proc(20, 13, "python3", 10)), with(nb, proc(20, 13, "python3", 600))},
				slices.Repeat([][]procfs.Proc{with(nb, proc(20, 13, "python3", 600))}, 5)...),
		},
		{
			// /dev/shm: resident, but shmem, which no kill frees.
			name: "shm fill",
			snaps: func() [][]procfs.Proc {
				var out [][]procfs.Proc
				for _, mib := range []uint64{0, 300, 600} {
					p := proc(20, 13, "dd", 1)
					p.RSSShmem = mib << 20
					out = append(out, with(nb, p))
				}
				return out
			}(),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ph := snapshots(now, tc.snaps...)
			cur := tc.snaps[len(tc.snaps)-1]
			a := attribute(cur, ph, now, 8*time.Second, 0, policy.DefaultKeep, true)
			if !a.known {
				t.Fatal("no earlier snapshot found")
			}
			var got []int
			for _, m := range a.members {
				got = append(got, m.PID)
			}
			if !slices.Equal(got, tc.wantMembers) || a.family != tc.wantFamily {
				t.Errorf("members %v (family %v), want %v (family %v)", got, a.family, tc.wantMembers, tc.wantFamily)
			}
			var kept []int
			for _, k := range a.kept {
				kept = append(kept, k.p.PID)
			}
			if !slices.Equal(kept, tc.wantKept) {
				t.Errorf("spared %v, want %v", kept, tc.wantKept)
			}
			if a.init != 10 {
				t.Errorf("init %d, want 10 (tini: the oldest process whose parent is outside)", a.init)
			}
		})
	}
}

// TestFirstSightIsNotGrowth: a process seen once has a size, not a growth.
func TestFirstSightIsNotGrowth(t *testing.T) {
	now := time.Unix(10_000, 0)
	procs := with(notebook(), proc(20, 13, "python3", 900))
	a := attribute(procs, snapshots(now, procs), now, 8*time.Second, 0, nil, true)
	if a.known || a.head != nil {
		t.Errorf("one snapshot: %+v, want unknown and no culprit", a)
	}
	// Born after an earlier snapshot: all of it is growth.
	ph := snapshots(now, notebook(), procs)
	if a := attribute(procs, ph, now, 8*time.Second, 0, nil, true); a.head == nil || a.head.PID != 20 || a.grew != 900<<20 {
		t.Errorf("born since: %+v", a)
	}
	// A recycled pid (other start time) is a new process, not the old one
	// grown or shrunk.
	old := with(notebook(), proc(20, 13, "python3", 900))
	recycled := with(notebook(), proc(20, 13, "python3", 950))
	recycled[len(recycled)-1].StartTime += 77
	if g, _ := snapshots(now, old, recycled).growth(recycled[len(recycled)-1], now, 8*time.Second); g != 950<<20 {
		t.Errorf("recycled pid grew %d, want all of its 950 MiB", g)
	}
}

// TestContainerInit: the runtime's pid wins while it is there; else the
// oldest process whose parent is outside. kubectl exec sessions (parent
// outside too, but younger) and inner pid namespaces are not the init.
func TestContainerInit(t *testing.T) {
	procs := notebook()
	exec := proc(50, 2, "bash", 3) // kubectl exec: parent is the shim
	inner := proc(51, 13, "python3", 3)
	inner.NSPID = 1
	procs = append(procs, exec, inner)
	for name, tc := range map[string]struct {
		reported int
		procs    []procfs.Proc
		want     int
	}{
		"from the tree":         {0, procs, 10},
		"reported by the agent": {11, procs, 11},
		"reported but gone":     {99, procs, 10},
		"init gone":             {0, procs[1:], 11},
		"no process":            {0, nil, 0},
	} {
		if got := containerInit(tc.procs, tc.reported); got != tc.want {
			t.Errorf("%s: init %d, want %d", name, got, tc.want)
		}
	}
}

func TestProcHistForgetsTheGone(t *testing.T) {
	now := time.Unix(10_000, 0)
	ph := snapshots(now, with(notebook(), proc(20, 13, "x", 5)), notebook())
	if _, ok := ph.procs[20]; ok || len(ph.procs) != 4 {
		t.Errorf("history holds %d processes (20 present: %v), want the 4 live", len(ph.procs), ok)
	}
	for i := range 40 {
		ph.add(now.Add(time.Duration(i)*time.Second), notebook(), 10*time.Second)
	}
	if len(ph.snaps) > 12 || len(ph.procs[12].pts) > 12 {
		t.Errorf("kept %d snapshots and %d points, want those of the last 10 s", len(ph.snaps), len(ph.procs[12].pts))
	}
}
