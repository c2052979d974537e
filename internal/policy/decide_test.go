package policy

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestDecide(t *testing.T) {
	base := Default()
	base.Selector.Labels = map[string]string{"app": "latch-pods"}
	base.Selector.ExcludeLabels = map[string]string{"podwarden.io/skip": "true"}

	nsOnly := Default()
	nsOnly.Selector.Namespaces = []string{"hub", "ml"}

	anyValue := Default()
	anyValue.Selector.Labels = map[string]string{"team": "*"}
	anyValue.Selector.ExcludeLabels = map[string]string{"legacy": "*"}

	floor := base
	floor.AnnotationMinAdj = -500

	latch := map[string]string{"app": "latch-pods"}
	tests := map[string]struct {
		cfg        Config
		t          Target
		want       Decision
		wantReason string // substring
	}{
		"selected with defaults": {
			cfg: base, t: Target{Namespace: "hub", Labels: latch},
			want: Decision{Target: true, OOMGroup: ModeSingle, Adj: 900, AdjSet: true}, wantReason: "selected",
		},
		"kube-system excluded by default": {
			cfg: base, t: Target{Namespace: "kube-system", Labels: latch},
			want: Decision{OOMGroup: ModeLeave}, wantReason: "namespace kube-system is excluded",
		},
		"label missing": {
			cfg: base, t: Target{Namespace: "hub", Labels: map[string]string{"other": "x"}},
			want: Decision{OOMGroup: ModeLeave}, wantReason: "label app is missing",
		},
		"label differs": {
			cfg: base, t: Target{Namespace: "hub", Labels: map[string]string{"app": "web"}},
			want: Decision{OOMGroup: ModeLeave}, wantReason: "label app=web, selector.labels wants latch-pods",
		},
		"nil labels": {
			cfg: base, t: Target{Namespace: "hub"},
			want: Decision{OOMGroup: ModeLeave}, wantReason: "missing",
		},
		"exclude label": {
			cfg: base, t: Target{Namespace: "hub", Labels: map[string]string{"app": "latch-pods", "podwarden.io/skip": "true"}},
			want: Decision{OOMGroup: ModeLeave}, wantReason: "excluded (selector.excludeLabels)",
		},
		"exclude label other value": {
			cfg: base, t: Target{Namespace: "hub", Labels: map[string]string{"app": "latch-pods", "podwarden.io/skip": "false"}},
			want: Decision{Target: true, OOMGroup: ModeSingle, Adj: 900, AdjSet: true},
		},
		"namespace list hit": {
			cfg: nsOnly, t: Target{Namespace: "ml"},
			want: Decision{Target: true, OOMGroup: ModeSingle, Adj: 900, AdjSet: true},
		},
		"namespace list miss": {
			cfg: nsOnly, t: Target{Namespace: "web"},
			want: Decision{OOMGroup: ModeLeave}, wantReason: "not in selector.namespaces",
		},
		"wildcard label present": {
			cfg: anyValue, t: Target{Namespace: "a", Labels: map[string]string{"team": "data"}},
			want: Decision{Target: true, OOMGroup: ModeSingle, Adj: 900, AdjSet: true},
		},
		"wildcard label absent": {
			cfg: anyValue, t: Target{Namespace: "a"},
			want: Decision{OOMGroup: ModeLeave}, wantReason: "label team is missing",
		},
		"wildcard exclude": {
			cfg: anyValue, t: Target{Namespace: "a", Labels: map[string]string{"team": "data", "legacy": ""}},
			want: Decision{OOMGroup: ModeLeave}, wantReason: "legacy= is excluded",
		},
		"annotation group": {
			cfg: base, t: Target{Namespace: "hub", Labels: latch, Annotations: map[string]string{AnnotationOOMKill: "group"}},
			want: Decision{Target: true, OOMGroup: ModeGroup, Adj: 900, AdjSet: true}, wantReason: "podwarden.dev/oom-kill=group",
		},
		"annotation leave": {
			cfg: base, t: Target{Namespace: "hub", Labels: latch, Annotations: map[string]string{AnnotationOOMKill: " leave "}},
			want: Decision{Target: true, OOMGroup: ModeLeave, Adj: 900, AdjSet: true},
		},
		"bad mode annotation ignored": {
			cfg: base, t: Target{Namespace: "hub", Labels: latch, Annotations: map[string]string{AnnotationOOMKill: "Single"}},
			want: Decision{Target: true, OOMGroup: ModeSingle, Adj: 900, AdjSet: true}, wantReason: `ignored podwarden.dev/oom-kill: "Single" is not one of`,
		},
		"adj annotation": {
			cfg: base, t: Target{Namespace: "hub", Labels: latch, Annotations: map[string]string{AnnotationOOMScoreAdj: "250"}},
			want: Decision{Target: true, OOMGroup: ModeSingle, Adj: 250, AdjSet: true}, wantReason: "podwarden.dev/oom-score-adj=250",
		},
		"adj annotation not a number": {
			cfg: base, t: Target{Namespace: "hub", Labels: latch, Annotations: map[string]string{AnnotationOOMScoreAdj: "low"}},
			want: Decision{Target: true, OOMGroup: ModeSingle, Adj: 900, AdjSet: true}, wantReason: `"low" is not an integer`,
		},
		"adj annotation below floor": {
			cfg: base, t: Target{Namespace: "hub", Labels: latch, Annotations: map[string]string{AnnotationOOMScoreAdj: "-1000"}},
			want: Decision{Target: true, OOMGroup: ModeSingle, Adj: 900, AdjSet: true}, wantReason: "-1000 is outside 0..1000",
		},
		"adj annotation above 1000": {
			cfg: base, t: Target{Namespace: "hub", Labels: latch, Annotations: map[string]string{AnnotationOOMScoreAdj: "1001"}},
			want: Decision{Target: true, OOMGroup: ModeSingle, Adj: 900, AdjSet: true}, wantReason: "outside",
		},
		"adj annotation with a lower floor": {
			cfg: floor, t: Target{Namespace: "hub", Labels: latch, Annotations: map[string]string{AnnotationOOMScoreAdj: "-400"}},
			want: Decision{Target: true, OOMGroup: ModeSingle, Adj: -400, AdjSet: true},
		},
		// Pods annotated before the domain became podwarden.dev.
		"legacy domain read": {
			cfg: base, t: Target{Namespace: "hub", Labels: latch, Annotations: map[string]string{"podwarden.io/oom-kill": "group", "podwarden.io/oom-score-adj": "300"}},
			want: Decision{Target: true, OOMGroup: ModeGroup, Adj: 300, AdjSet: true}, wantReason: "podwarden.io/oom-kill=group; podwarden.io/oom-score-adj=300",
		},
		"legacy domain checked too": {
			cfg: base, t: Target{Namespace: "hub", Labels: latch, Annotations: map[string]string{"podwarden.io/oom-score-adj": "-1000"}},
			want: Decision{Target: true, OOMGroup: ModeSingle, Adj: 900, AdjSet: true}, wantReason: "ignored podwarden.io/oom-score-adj: -1000 is outside",
		},
		"new domain wins": {
			cfg: base, t: Target{Namespace: "hub", Labels: latch, Annotations: map[string]string{"podwarden.io/oom-kill": "leave", "podwarden.dev/oom-kill": "group"}},
			want: Decision{Target: true, OOMGroup: ModeGroup, Adj: 900, AdjSet: true}, wantReason: "podwarden.dev/oom-kill=group",
		},
		"annotations do not select": {
			cfg: base, t: Target{Namespace: "hub", Annotations: map[string]string{AnnotationOOMKill: "single"}},
			want: Decision{OOMGroup: ModeLeave}, wantReason: "missing",
		},
		"both annotations, one bad": {
			cfg: base, t: Target{Namespace: "hub", Labels: latch, Annotations: map[string]string{AnnotationOOMKill: "group", AnnotationOOMScoreAdj: "x"}},
			want: Decision{Target: true, OOMGroup: ModeGroup, Adj: 900, AdjSet: true}, wantReason: "podwarden.dev/oom-kill=group; ignored",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := tc.cfg.Decide(tc.t)
			reason := got.Reason
			got.Reason = ""
			// No preempt annotations here: targets get the policy's.
			pre := got.Preempt
			got.Preempt = PreemptDecision{}
			if got.Target && (pre.Mode != PreemptOn || !slices.Equal(pre.Keep, tc.cfg.Preempt.Keep)) {
				t.Errorf("Preempt = %+v, want on with the policy's keep list", pre)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Decide = %+v (%s), want %+v", got, reason, tc.want)
			}
			if reason == "" || !strings.Contains(reason, tc.wantReason) {
				t.Errorf("Reason = %q, want it to contain %q", reason, tc.wantReason)
			}
		})
	}
}

func TestProtectHost(t *testing.T) {
	cfg := Default()
	cfg.Protected = append(cfg.Protected,
		ProtectedRule{Exe: "/usr/bin/node_exporter", Adj: -500},
		ProtectedRule{Cgroup: "/system.slice/rngd.service", Adj: -800},
		ProtectedRule{Comm: "agent", Exe: "/opt/**/agent", Adj: -100},
	)
	tests := map[string]struct {
		comm, exe, cgroup string
		adj               int
		ok                bool
	}{
		"sshd":                         {"sshd", "/usr/sbin/sshd", "/system.slice/sshd.service", -900, true},
		"comm with newline":            {"sshd\n", "", "", -900, true},
		"networkd truncated by kernel": {"systemd-network", "/usr/lib/systemd/systemd-networkd", "", -900, true},
		"resolved truncated":           {"systemd-resolve", "", "", -900, true},
		"ssm agent truncated":          {"amazon-ssm-agen", "/usr/bin/amazon-ssm-agent", "", -900, true},
		// The notes' node: daemons its node OOM killed or that keep it
		// reachable, by the names the kernel keeps (15 bytes).
		"journald truncated":             {"systemd-journal", "/usr/lib/systemd/systemd-journald", "/system.slice/systemd-journald.service", -900, true},
		"chronyd":                        {"chronyd", "/usr/sbin/chronyd", "/system.slice/chronyd.service", -900, true},
		"timesyncd truncated":            {"systemd-timesyn", "", "", -900, true},
		"ssm worker truncated":           {"ssm-agent-worke", "/usr/bin/ssm-agent-worker", "", -900, true},
		"polkitd":                        {"polkitd", "/usr/lib/polkit-1/polkitd", "/system.slice/polkit.service", -900, true},
		"polkitd inside a pod":           {"polkitd", "", "/kubepods/podx/crio-abc/system.slice", 0, false},
		"GPU persistenced":               {"nvidia-persiste", "/usr/bin/nvidia-persistenced", "", -900, true},
		"GPU fabric manager":             {"nv-fabricmanage", "/usr/bin/nv-fabricmanager", "/system.slice/nvidia-fabricmanager.service", -900, true},
		"DCGM host engine":               {"nv-hostengine", "/usr/bin/nv-hostengine", "/system.slice/nvidia-dcgm.service", -900, true},
		"DCGM exporter's engine":         {"nv-hostengine", "", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podx.slice/cri-containerd-a.scope", 0, false},
		"crio left to kubelet":           {"crio", "/usr/bin/crio", "/system.slice/crio.service", 0, false},
		"dockerd left alone":             {"dockerd", "/usr/bin/dockerd", "/system.slice/docker.service", 0, false},
		"sshd-session is not sshd":       {"sshd-session", "/usr/lib/openssh/sshd-session", "", 0, false},
		"exe rule":                       {"node_exporter", "/usr/bin/node_exporter", "", -500, true},
		"exe rule deleted binary":        {"node_exporter", "/usr/bin/node_exporter (deleted)", "", -500, true},
		"exe rule unreadable exe":        {"node_exporter", "", "", 0, false},
		"cgroup rule":                    {"rngd", "/usr/sbin/rngd", "/system.slice/rngd.service", -800, true},
		"all fields must match":          {"agent", "/usr/bin/agent", "", 0, false},
		"all fields match":               {"agent", "/opt/x/bin/agent", "", -100, true},
		"unprotected":                    {"bash", "/usr/bin/bash", "/user.slice/user-0.slice/session-1.scope", 0, false},
		"kubelet left to kubelet":        {"kubelet", "/usr/bin/kubelet", "/runtime.slice/kubelet.service", 0, false},
		"containerd left to its service": {"containerd", "/usr/bin/containerd", "/system.slice/containerd.service", 0, false},
		"pod process named sshd":         {"sshd", "/usr/sbin/sshd", "/kubepods.slice/kubepods-podx.slice/cri-containerd-a.scope", 0, false},
		"cgroupfs pod process":           {"sshd", "/usr/sbin/sshd", "/kubepods/burstable/podx/abc", 0, false},
		"nested kind node pod":           {"sshd", "", "/system.slice/docker-1.scope/kubepods/podx/abc", 0, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			adj, ok := cfg.ProtectHost(tc.comm, tc.exe, tc.cgroup)
			if adj != tc.adj || ok != tc.ok {
				t.Errorf("ProtectHost(%q, %q, %q) = %d, %v; want %d, %v", tc.comm, tc.exe, tc.cgroup, adj, ok, tc.adj, tc.ok)
			}
		})
	}
	// First matching rule wins, and an empty rule (rejected by Validate)
	// never matches everything.
	c := Config{Protected: []ProtectedRule{{Adj: -1000}, {Comm: "x", Adj: -1}, {Comm: "x", Adj: -2}}}
	if adj, ok := c.ProtectHost("x", "", ""); adj != -1 || !ok {
		t.Errorf("order: got %d, %v", adj, ok)
	}
	if _, ok := c.ProtectHost("y", "", ""); ok {
		t.Error("empty rule matched")
	}
}

func TestValidate(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	tests := map[string]struct {
		mut  func(*Config)
		want string
	}{
		"mode":           {func(c *Config) { c.OOMGroup = "kill" }, `oomGroup: "kill" is not one of`},
		"adj":            {func(c *Config) { c.PodOOMScoreAdj = 1001 }, "podOOMScoreAdj: 1001 is outside"},
		"floor":          {func(c *Config) { c.AnnotationMinAdj = -1001 }, "annotationMinAdj"},
		"interval":       {func(c *Config) { c.Interval = 0 }, "interval: 0s is shorter"},
		"empty rule":     {func(c *Config) { c.Protected = []ProtectedRule{{Adj: -900}} }, "protected[0]: needs at least one"},
		"relative exe":   {func(c *Config) { c.Protected = []ProtectedRule{{Exe: "sshd"}} }, `protected[0].exe: "sshd" must be an absolute path glob`},
		"bad cgroup":     {func(c *Config) { c.Protected = []ProtectedRule{{Cgroup: "/a/["}} }, "protected[0].cgroup: bad glob"},
		"rule adj":       {func(c *Config) { c.Protected = []ProtectedRule{{Comm: "a", Adj: -2000}} }, "protected[0].adj"},
		"selector glob":  {func(c *Config) { c.CgroupSelector = "/kubepods/[" }, "cgroupSelector: bad glob"},
		"namespace name": {func(c *Config) { c.Selector.Namespaces = []string{"Hub"} }, `selector.namespaces: "Hub" is not a valid namespace`},
		"both lists":     {func(c *Config) { c.Selector.Namespaces = []string{"kube-system"} }, "both in namespaces and excludeNamespaces"},
		"label key":      {func(c *Config) { c.Selector.Labels = map[string]string{"bad key": "x"} }, "selector.labels: label key"},
		"label value":    {func(c *Config) { c.Selector.ExcludeLabels = map[string]string{"a": "-x"} }, "selector.excludeLabels: label a: value"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := Default()
			tc.mut(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestDefaultIsFresh(t *testing.T) {
	a := Default()
	a.Selector.ExcludeNamespaces[0] = "changed"
	a.Protected[0].Comm = "changed"
	a.Selector.Labels["x"] = "y"
	b := Default()
	if b.Selector.ExcludeNamespaces[0] != "kube-system" || b.Protected[0].Comm != "sshd" || len(b.Selector.Labels) != 0 {
		t.Error("Default shares state between calls")
	}
}

func TestHostComms(t *testing.T) {
	tests := []struct {
		name   string
		rules  []ProtectedRule
		want   []string
		wantOK bool
	}{
		{"defaults, cut to 15 bytes", Default().Protected, []string{"sshd", "systemd-network", "systemd-resolve", "systemd-journal", "chronyd", "systemd-timesyn", "amazon-ssm-agen", "ssm-agent-worke", "polkitd", "nvidia-persiste", "nv-fabricmanage", "nv-hostengine"}, true},
		{"a rule without comm matches any name", []ProtectedRule{{Comm: "sshd"}, {Cgroup: "/system.slice/x.service"}}, nil, false},
		{"none", nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Config{Protected: tt.rules}.HostComms()
			if ok != tt.wantOK || len(got) != len(tt.want) {
				t.Fatalf("HostComms = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
			for _, c := range tt.want {
				if !got[c] {
					t.Errorf("missing %q in %v", c, got)
				}
			}
		})
	}
}

func TestDecidePreempt(t *testing.T) {
	cfg := Default()
	cfg.Preempt.Keep = []string{"jupyter-lab"}
	tests := map[string]struct {
		ann        map[string]string
		want       PreemptDecision
		wantReason string
	}{
		"none":          {want: PreemptDecision{Mode: PreemptOn, Keep: []string{"jupyter-lab"}}, wantReason: "selected"},
		"off":           {ann: map[string]string{AnnotationPreempt: "off"}, want: PreemptDecision{Mode: PreemptOff, Keep: []string{"jupyter-lab"}}, wantReason: "podwarden.dev/preempt=off"},
		"dry-run":       {ann: map[string]string{AnnotationPreempt: " dry-run "}, want: PreemptDecision{Mode: PreemptDryRun, Keep: []string{"jupyter-lab"}}, wantReason: "preempt=dry-run"},
		"bad mode":      {ann: map[string]string{AnnotationPreempt: "never"}, want: PreemptDecision{Mode: PreemptOn, Keep: []string{"jupyter-lab"}}, wantReason: `ignored podwarden.dev/preempt: "never"`},
		"keep adds":     {ann: map[string]string{AnnotationPreemptKeep: "code-server, rstudio*,"}, want: PreemptDecision{Mode: PreemptOn, Keep: []string{"jupyter-lab", "code-server", "rstudio*"}}, wantReason: "preempt-keep=code-server,rstudio*"},
		"bad keep glob": {ann: map[string]string{AnnotationPreemptKeep: "ok,[x"}, want: PreemptDecision{Mode: PreemptOn, Keep: []string{"jupyter-lab"}}, wantReason: "ignored podwarden.dev/preempt-keep"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d := cfg.Decide(Target{Namespace: "hub", Annotations: tc.ann})
			if !reflect.DeepEqual(d.Preempt, tc.want) {
				t.Errorf("Preempt = %+v, want %+v", d.Preempt, tc.want)
			}
			if !strings.Contains(d.Reason, tc.wantReason) {
				t.Errorf("Reason %q does not contain %q", d.Reason, tc.wantReason)
			}
		})
	}
	// The policy's list is never changed by a pod's annotation.
	if !slices.Equal(cfg.Preempt.Keep, []string{"jupyter-lab"}) {
		t.Errorf("policy keep list changed: %v", cfg.Preempt.Keep)
	}
}
