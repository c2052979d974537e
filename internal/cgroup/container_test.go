package cgroup

import "testing"

func TestInContainer(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for p, want := range map[string]bool{
		"/kubepods/burstable/pod11111111-2222-3333-4444-555555555555/" + id: true,
		"/kubepods/burstable/pod11111111-2222-3333-4444-555555555555":       true,
		"/docker/" + id:                                    true,
		"/system.slice/docker-" + id + ".scope":            true,
		"/machine.slice/libpod-" + id + ".scope/container": true,
		"/lxc.payload.web/system.slice/ssh.service":        true,
		"/system.slice/ssh.service":                        false,
		"/user.slice/user-0.slice/session-3.scope":         false,
		"/":                            false,
		"":                             false,
		"/system.slice/docker.service": false,
		"/system.slice/run-r" + id[:32] + ".scope":                                       false,
		"/podwarden-agent-test-1/kubepods/pod11111111-2222-3333-4444-555555555555/" + id: true,
	} {
		if got := InContainer(p); got != want {
			t.Errorf("InContainer(%q) = %v, want %v", p, got, want)
		}
	}
}
