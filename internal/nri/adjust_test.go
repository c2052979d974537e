package nri

import (
	"strconv"
	"testing"

	"github.com/containerd/nri/pkg/api"

	"podwarden/internal/policy"
)

// want is a change written the way a reader checks it: "-" for untouched.
type want struct {
	oomGroup string
	adj      string
}

func describe(a *api.ContainerAdjustment) want {
	w := want{oomGroup: "-", adj: "-"}
	if a == nil {
		return w
	}
	if v, ok := a.GetLinux().GetResources().GetUnified()[OOMGroupKey]; ok {
		w.oomGroup = v
	}
	if o := a.GetLinux().GetOomScoreAdj(); o != nil {
		w.adj = strconv.FormatInt(o.GetValue(), 10)
	}
	return w
}

func pod(ns string, annotations map[string]string) *api.PodSandbox {
	return &api.PodSandbox{Id: "sb-" + ns, Uid: "uid-" + ns, Name: "p", Namespace: ns,
		Labels: map[string]string{"app": "notebook"}, Annotations: annotations}
}

func TestAdjustment(t *testing.T) {
	def := policy.Default()
	group := policy.Default()
	group.OOMGroup = policy.ModeGroup
	leave := policy.Default()
	leave.OOMGroup = policy.ModeLeave
	labelled := policy.Default()
	labelled.Selector.Labels = map[string]string{"podwarden.io/protect": "*"}

	tests := map[string]struct {
		cfg      policy.Config
		pod      *api.PodSandbox
		cgroupV2 bool
		want     want
	}{
		"target gets single and 900": {
			cfg: def, pod: pod("jupyter", nil), cgroupV2: true,
			want: want{oomGroup: "0", adj: "900"},
		},
		"kube-system is excluded by default": {
			cfg: def, pod: pod("kube-system", nil), cgroupV2: true,
			want: want{oomGroup: "-", adj: "-"},
		},
		"annotation asks for group": {
			cfg: def, pod: pod("jupyter", map[string]string{policy.AnnotationOOMKill: "group"}), cgroupV2: true,
			want: want{oomGroup: "1", adj: "900"},
		},
		"annotation asks to leave oom.group alone": {
			cfg: def, pod: pod("jupyter", map[string]string{policy.AnnotationOOMKill: "leave"}), cgroupV2: true,
			want: want{oomGroup: "-", adj: "900"},
		},
		"annotation adj within the floor": {
			cfg: def, pod: pod("jupyter", map[string]string{policy.AnnotationOOMScoreAdj: "500"}), cgroupV2: true,
			want: want{oomGroup: "0", adj: "500"},
		},
		"annotation adj below the floor is ignored": {
			cfg: def, pod: pod("jupyter", map[string]string{policy.AnnotationOOMScoreAdj: "-1000"}), cgroupV2: true,
			want: want{oomGroup: "0", adj: "900"},
		},
		"bad annotation falls back to the config": {
			cfg: def, pod: pod("jupyter", map[string]string{policy.AnnotationOOMKill: "bogus"}), cgroupV2: true,
			want: want{oomGroup: "0", adj: "900"},
		},
		"config mode group": {
			cfg: group, pod: pod("batch", nil), cgroupV2: true,
			want: want{oomGroup: "1", adj: "900"},
		},
		"config mode leave still sets adj": {
			cfg: leave, pod: pod("batch", nil), cgroupV2: true,
			want: want{oomGroup: "-", adj: "900"},
		},
		"cgroup v1 never gets unified resources": {
			cfg: def, pod: pod("jupyter", nil), cgroupV2: false,
			want: want{oomGroup: "-", adj: "900"},
		},
		"label selector not matched": {
			cfg: labelled, pod: pod("jupyter", nil), cgroupV2: true,
			want: want{oomGroup: "-", adj: "-"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d := tc.cfg.Decide(targetOf(tc.pod))
			got := describe(plan(d, tc.cgroupV2).adjustment())
			if got != tc.want {
				t.Errorf("got %+v, want %+v (decision %+v)", got, tc.want, d)
			}
		})
	}
}

func resources(unified map[string]string) *api.LinuxResources {
	return &api.LinuxResources{Unified: unified}
}

func TestHold(t *testing.T) {
	single := change{oomGroup: "0", adj: 900, adjSet: true}
	tests := map[string]struct {
		c    change
		req  *api.LinuxResources
		want string // "" for no update
	}{
		"resize resends 1":          {single, resources(map[string]string{OOMGroupKey: "1"}), "0"},
		"request agrees":            {single, resources(map[string]string{OOMGroupKey: "0"}), ""},
		"request without the key":   {single, resources(map[string]string{"memory.high": "max"}), ""},
		"no resources at all":       {single, nil, ""},
		"mode leave never holds":    {change{adj: 900, adjSet: true}, resources(map[string]string{OOMGroupKey: "1"}), ""},
		"mode group holds 1 too":    {change{oomGroup: "1"}, resources(map[string]string{OOMGroupKey: "0"}), "1"},
		"not a target never holds":  {change{}, resources(map[string]string{OOMGroupKey: "1"}), ""},
		"other keys are not copied": {single, resources(map[string]string{OOMGroupKey: "1", "memory.high": "max"}), "0"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			u := tc.c.hold("c1", tc.req)
			checkUpdate(t, u, tc.want, false)
		})
	}
}

func TestFix(t *testing.T) {
	tests := map[string]struct {
		c    change
		cur  *api.LinuxResources
		want string
	}{
		"kubelet wrote 1":           {change{oomGroup: "0"}, resources(map[string]string{OOMGroupKey: "1"}), "0"},
		"already 0":                 {change{oomGroup: "0"}, resources(map[string]string{OOMGroupKey: "0"}), ""},
		"never written is 0":        {change{oomGroup: "0"}, resources(nil), ""},
		"never written, group asks": {change{oomGroup: "1"}, nil, "1"},
		"leave":                     {change{}, resources(map[string]string{OOMGroupKey: "1"}), ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			checkUpdate(t, tc.c.fix("c1", tc.cur), tc.want, true)
		})
	}
}

func checkUpdate(t *testing.T, u *api.ContainerUpdate, want string, ignoreFailure bool) {
	t.Helper()
	if want == "" {
		if u != nil {
			t.Fatalf("got update %v, want none", u)
		}
		return
	}
	if u == nil {
		t.Fatalf("got no update, want memory.oom.group=%s", want)
	}
	if u.GetContainerId() != "c1" {
		t.Errorf("update for %q, want c1", u.GetContainerId())
	}
	unified := u.GetLinux().GetResources().GetUnified()
	if len(unified) != 1 || unified[OOMGroupKey] != want {
		t.Errorf("unified %v, want only %s=%s", unified, OOMGroupKey, want)
	}
	if u.GetIgnoreFailure() != ignoreFailure {
		t.Errorf("IgnoreFailure %v, want %v", u.GetIgnoreFailure(), ignoreFailure)
	}
}
