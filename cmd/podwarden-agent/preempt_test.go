package main

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"podwarden/internal/agent"
	"podwarden/internal/cgroup"
	"podwarden/internal/policy"
	"podwarden/internal/preempt"
	"podwarden/internal/target"
)

// TestPreemptSeriesJoinAgentSeries (issue 23): for a container found
// without a runtime, early action's series label it as the agent's do, so
// podwarden_preempt_kills_total joins podwarden_protected_container_info
// on namespace, pod and container. Built as the agent builds runtime-less
// targets (the ids its cgroup path carries), through the same conversion
// the agent binary hands the engine; read back from real registries.
func TestPreemptSeriesJoinAgentSeries(t *testing.T) {
	const uid = "5f3c2b1a-9e8d-4c7b-a6f5-e4d3c2b1a098"
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	paths := map[string]string{
		"cgroupfs driver": "/kubepods/burstable/pod" + uid + "/" + id,
		"systemd driver": "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" +
			"5f3c2b1a_9e8d_4c7b_a6f5_e4d3c2b1a098.slice/cri-containerd-" + id + ".scope",
		"crio systemd":      "/kubepods.slice/kubepods-pod" + "5f3c2b1a_9e8d_4c7b_a6f5_e4d3c2b1a098.slice/crio-" + id + ".scope",
		"not a pod":         "/system.slice/jupyterhub.service",
		"named by the user": "/kubepods/pod" + uid + "/" + id,
	}
	for name, cg := range paths {
		t.Run(name, func(t *testing.T) {
			o := cgroup.ParsePath(cg)
			at := agent.Target{Ref: target.Ref{Cgroup: cg, PodUID: o.PodUID, ContainerID: o.ContainerID}}
			if name == "named by the user" {
				at.Namespace, at.PodName, at.Container = "users", "nb-0", "notebook"
			}
			pt := preemptTargets([]agent.Target{at})[0]

			reg := prometheus.NewRegistry()
			am := agent.NewMetrics(reg)
			pm := preempt.NewMetrics(reg)
			al, pl := at.Labels(), pt.Labels()
			am.ProtectedInfo.WithLabelValues(al[:]...).Set(1)
			pm.Kills.WithLabelValues(pl[0], pl[1], pl[2], "node", "SIGINT").Inc()

			fams, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			key := func(m map[string]string) string { return m["namespace"] + "/" + m["pod"] + "/" + m["container"] }
			series := map[string][]string{}
			for _, f := range fams {
				for _, m := range f.GetMetric() {
					l := map[string]string{}
					for _, p := range m.GetLabel() {
						l[p.GetName()] = p.GetValue()
					}
					series[f.GetName()] = append(series[f.GetName()], key(l))
				}
			}
			info, kills := series["podwarden_protected_container_info"], series["podwarden_preempt_kills_total"]
			if len(info) != 1 || len(kills) != 1 || info[0] != kills[0] {
				t.Errorf("%s: agent series %q, early action's %q: they do not join on namespace/pod/container", cg, info, kills)
			}
			if want := cgroup.ContainerLabel(at.Container, o.ContainerID, cg); pl[2] != want {
				t.Errorf("container label %q, want %q", pl[2], want)
			}
		})
	}
}

// TestPreemptFeedConvertsOncePerSnapshot (issue 23): the engine asks for
// the targets at every step; the agent's snapshot is converted for it only
// when the agent published a new one (the same slice comes back until
// then), and a new one, with a changed decision or another container, is
// handed on at the next ask.
func TestPreemptFeedConvertsOncePerSnapshot(t *testing.T) {
	nb := agent.Target{Ref: target.Ref{Cgroup: "/kubepods/podu/nb", PodUID: "u", Namespace: "users", PodName: "nb-0", Container: "notebook"}}
	nb.Decision.Preempt.Mode = policy.PreemptOn
	var ts []agent.Target
	var gen uint64
	f := &preemptFeed{src: func() ([]agent.Target, uint64) { return ts, gen }}

	if got, g := f.targets(); len(got) != 0 || g != 0 {
		t.Fatalf("before the agent published: %+v, generation %d", got, g)
	}
	ts, gen = []agent.Target{nb}, 1
	first, g := f.targets()
	if len(first) != 1 || g != 1 || first[0].Ref != nb.Ref || first[0].Preempt.Mode != policy.PreemptOn {
		t.Fatalf("first snapshot: %+v, generation %d", first, g)
	}
	for range 3 {
		if again, g := f.targets(); g != 1 || len(again) != 1 || &again[0] != &first[0] {
			t.Fatalf("same snapshot converted again: %p, was %p (generation %d)", again, first, g)
		}
	}
	off := nb
	off.Decision.Preempt.Mode = policy.PreemptOff
	other := agent.Target{Ref: target.Ref{Cgroup: "/system.slice/jupyterhub.service"}}
	ts, gen = []agent.Target{off, other}, 2
	got, g := f.targets()
	if g != 2 || len(got) != 2 || got[0].Preempt.Mode != policy.PreemptOff || got[1].Cgroup != other.Cgroup {
		t.Errorf("new snapshot: %+v, generation %d", got, g)
	}
}
