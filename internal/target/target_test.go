package target

import "testing"

// TestRefNames: how a container is named in series and logs, from what
// the runtime told (names) down to what its cgroup path alone carries.
func TestRefNames(t *testing.T) {
	const (
		uid = "5f3c2b1a-9e8d-4c7b-a6f5-e4d3c2b1a098"
		id  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		cg  = "/kubepods/burstable/pod" + uid + "/" + id
	)
	tests := map[string]struct {
		r       Ref
		labels  [3]string
		podRef  string
		logName string
	}{
		"named by the runtime": {
			Ref{Cgroup: cg, PodUID: uid, Namespace: "users", PodName: "nb-0", ContainerID: id, Container: "notebook"},
			[3]string{"users", "nb-0", "notebook"}, "users/nb-0", "users/nb-0/notebook",
		},
		"pod named, container not": {
			Ref{Cgroup: cg, PodUID: uid, Namespace: "users", PodName: "nb-0", ContainerID: id},
			[3]string{"users", "nb-0", "0123456789abc"}, "users/nb-0", "users/nb-0",
		},
		"runtime-less: ids from the path": {
			Ref{Cgroup: cg, PodUID: uid, ContainerID: id},
			[3]string{"", uid, "0123456789abc"}, uid, cg,
		},
		"not a pod": {
			Ref{Cgroup: "/system.slice/jupyterhub.service"},
			[3]string{"", "", "jupyterhub.service"}, "", "/system.slice/jupyterhub.service",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.r.Labels(); got != tc.labels {
				t.Errorf("Labels() = %q, want %q", got, tc.labels)
			}
			if got := tc.r.ContainerLabel(); got != tc.labels[2] {
				t.Errorf("ContainerLabel() = %q, want %q", got, tc.labels[2])
			}
			if got := tc.r.PodRef(); got != tc.podRef {
				t.Errorf("PodRef() = %q, want %q", got, tc.podRef)
			}
			if got := tc.r.Name(); got != tc.logName {
				t.Errorf("Name() = %q, want %q", got, tc.logName)
			}
		})
	}
}
