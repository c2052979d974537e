package oom

import (
	"slices"
	"strings"
	"testing"
)

const (
	podUID    = "30e633b5-4140-4774-9122-1b9e140c8556"
	podCg     = "/kubepods/pod" + podUID
	containCg = podCg + "/crio-2c6ca22c5968ca227b2b77480c87fa56044a98fb92280ce03e613d95b6ea505b"
)

// seedNode rebuilds the seed's crash: daemons at adj 0, runtime daemons
// below zero, and a Guaranteed pod (adj -997) whose python holds 7.1 GiB of
// an 8 GiB node.
func seedNode() []Task {
	mib := uint64(1 << 20 / PageSize)
	return []Task{
		{PID: 1, Comm: "systemd", RSSPages: 3 * mib, Cgroup: "/init.scope"},
		{PID: 1124, Comm: "systemd-network", RSSPages: 1 * mib, Cgroup: "/system.slice/systemd-networkd.service"},
		{PID: 1231, Comm: "crio", Adj: -999, RSSPages: 60 * mib, Cgroup: "/system.slice/crio.service"},
		{PID: 1233, Comm: "dbus-daemon", Adj: -900, RSSPages: 2 * mib, Cgroup: "/system.slice/dbus.service"},
		{PID: 1293746, Comm: "sshd", Adj: -1000, RSSPages: 2 * mib, Cgroup: "/system.slice/sshd.service"},
		{PID: 2172743, Comm: "sshd", RSSPages: 2 * mib, Cgroup: "/user.slice/user-0.slice/session-1.scope"},
		{PID: 9328, Comm: "kubelet", Adj: -999, RSSPages: 100 * mib, Cgroup: "/system.slice/kubelet.service"},
		{PID: 999004, Comm: "conmon", Adj: -1000, RSSPages: 1 * mib, Cgroup: podCg + "/crio-conmon-2c6ca22c5968ca227b2b77480c87fa56044a98fb92280ce03e613d95b6ea505b"},
		{PID: 999026, Comm: "systemd", Adj: -997, RSSPages: 10 * mib, Cgroup: containCg + "/init.scope", Pod: podUID},
		{PID: 1004927, Comm: "jupyter-lab", Adj: -997, RSSPages: 200 * mib, Cgroup: containCg + "/system.slice", Pod: podUID},
		{PID: 2062665, Comm: "python", Adj: -997, RSSPages: 7270 * mib, Cgroup: containCg + "/system.slice", Pod: podUID},
		{PID: 2, Comm: "kthreadd", Kernel: true},
	}
}

func pids(vs []Victim) []int {
	var out []int
	for _, v := range vs {
		out = append(out, v.Task.PID)
	}
	return out
}

func TestPredictNodeOOM(t *testing.T) {
	tasks := seedNode()
	d := Domain{TotalPages: seedTotal}
	tests := []struct {
		name        string
		group       GroupFlag
		wantOrder   []int
		wantMembers map[int][]int
	}{
		{
			name:  "cgroup v1: no group kills",
			group: nil,
			// python (7.1 GiB at -997) outranks dbus at -900; kubelet and
			// crio at -999 outrank the pod's small processes at -997.
			wantOrder: []int{2172743, 1124, 2062665, 1233, 1004927, 9328, 1231, 999026},
		},
		{
			name:        "oom.group=1 on the container (kubelet on v2)",
			group:       func(cg string) bool { return cg == containCg },
			wantOrder:   []int{2172743, 1124, 2062665, 1233, 9328, 1231},
			wantMembers: map[int][]int{2062665: {999026, 1004927}},
		},
		{
			name:  "highest flagged ancestor wins",
			group: func(cg string) bool { return cg == containCg || cg == podCg },
			// The group is the pod, so conmon (adj -1000) is spared.
			wantOrder:   []int{2172743, 1124, 2062665, 1233, 9328, 1231},
			wantMembers: map[int][]int{2062665: {999026, 1004927}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs := Predict(tasks, d, tt.group)
			if got := pids(vs); !slices.Equal(got, tt.wantOrder) {
				t.Fatalf("order = %v, want %v", got, tt.wantOrder)
			}
			for _, v := range vs {
				var got []int
				for _, m := range v.Members {
					got = append(got, m.PID)
				}
				if want := tt.wantMembers[v.Task.PID]; !slices.Equal(got, want) {
					t.Errorf("victim %d members = %v, want %v", v.Task.PID, got, want)
				}
				if v.Rank == 0 {
					t.Errorf("victim %d has no rank", v.Task.PID)
				}
			}
		})
	}
}

func TestPredictCgroupOOM(t *testing.T) {
	tasks := seedNode()
	// A container limit of 8 GiB: only the container's tasks are
	// candidates, and within the same adj the biggest goes first.
	d := Domain{Cgroup: containCg, TotalPages: seedTotal}
	vs := Predict(tasks, d, nil)
	if got, want := pids(vs), []int{2062665, 1004927, 999026}; !slices.Equal(got, want) {
		t.Fatalf("order = %v, want %v", got, want)
	}
	// A flag above the domain is out of reach: the walk stops at the domain.
	vs = Predict(tasks, d, func(cg string) bool { return cg == podCg })
	if len(vs[0].Members) != 0 {
		t.Fatalf("group above the OOM domain was used: %+v", vs[0])
	}
}

func TestPredictTiesGoToLaterTask(t *testing.T) {
	tasks := []Task{{PID: 10, RSSPages: 5}, {PID: 20, RSSPages: 5}, {PID: 15, RSSPages: 6}}
	vs := Predict(tasks, Domain{TotalPages: 1000}, nil)
	if got, want := pids(vs), []int{15, 20, 10}; !slices.Equal(got, want) {
		t.Fatalf("order = %v, want %v", got, want)
	}
}

func TestJudge(t *testing.T) {
	tasks := seedNode()
	d := Domain{TotalPages: seedTotal}

	t.Run("seed crash", func(t *testing.T) {
		v := Judge(Predict(tasks, d, func(cg string) bool { return cg == containCg }), tasks, d)
		if !v.Problem || v.Hog.PID != 2062665 || v.HogRank != 3 || len(v.HostBefore) != 2 || v.GroupMembers != 2 {
			t.Fatalf("verdict = %+v", v)
		}
		for _, want := range []string{"would kill 2 system processes (sshd, systemd-network) before pod " + podUID + "'s python (pid 2062665) holding 7.1 GiB", "oom_score_adj -997", "takes 2 other processes"} {
			if !strings.Contains(v.Text, want) {
				t.Errorf("verdict %q lacks %q", v.Text, want)
			}
		}
	})

	t.Run("fixed: pod at 900", func(t *testing.T) {
		fixed := slices.Clone(tasks)
		for i := range fixed {
			if fixed[i].Pod != "" {
				fixed[i].Adj = 900
			}
		}
		v := Judge(Predict(fixed, d, nil), fixed, d)
		if v.Problem || v.HogRank != 1 || !strings.Contains(v.Text, "would kill pod "+podUID+"'s python (pid 2062665) holding 7.1 GiB first") {
			t.Fatalf("verdict = %+v", v)
		}
	})

	t.Run("hog at -1000", func(t *testing.T) {
		immortal := slices.Clone(tasks)
		immortal[10].Adj = AdjMin
		v := Judge(Predict(immortal, d, nil), immortal, d)
		if !v.Problem || !strings.Contains(v.Text, "can never kill") {
			t.Fatalf("verdict = %+v", v)
		}
	})

	t.Run("group kill chosen through a bystander", func(t *testing.T) {
		// In a container OOM a bystander at a higher adj (journald, -250)
		// is chosen over the hog at -997, and oom.group takes the hog and
		// everyone else with it.
		tasks := append(seedNode(), Task{PID: 999716, Comm: "systemd-journal", Adj: -250, RSSPages: 1024, Cgroup: containCg + "/system.slice", Pod: podUID})
		d := Domain{Cgroup: containCg, TotalPages: 178 << 30 / PageSize}
		vs := Predict(tasks, d, func(cg string) bool { return cg == containCg })
		v := Judge(vs, tasks, d)
		if vs[0].Task.PID != 999716 || !v.Problem || v.HogRank != 1 ||
			!strings.Contains(v.Text, "would kill pod "+podUID+"'s systemd-journal (pid 999716) holding 4.0 MiB as victim #1, and memory.oom.group on "+containCg+" takes pod "+podUID+"'s python (pid 2062665) holding 7.1 GiB and 2 other processes with it") {
			t.Fatalf("verdict = %+v", v)
		}
	})

	t.Run("nothing killable", func(t *testing.T) {
		v := Judge(nil, []Task{{PID: 1}}, d)
		if v.Problem || !strings.Contains(v.Text, "no process") {
			t.Fatalf("verdict = %+v", v)
		}
	})
}
