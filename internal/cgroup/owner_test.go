package cgroup

import (
	"strings"
	"testing"
)

// Ids and UIDs reused across the table; the seed's path is copied verbatim.
const (
	uid    = "30e633b5-4140-4774-9122-1b9e140c8556"
	uidU   = "30e633b5_4140_4774_9122_1b9e140c8556" // systemd form: "-" is a hierarchy step
	static = "6d1c7a2b8e9f40a1b2c3d4e5f6a7b8c9"     // static pods use the config hash
	cid    = "2c6ca22c5968ca227b2b77480c87fa56044a98fb92280ce03e613d95b6ea505b"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		name string
		path string
		want Owner
	}{
		// cgroupfs driver.
		{
			name: "seed crio besteffort-less guaranteed",
			path: "/kubepods/pod" + uid + "/crio-" + cid,
			want: Owner{PodUID: uid, QoS: QoSGuaranteed, ContainerID: cid, Runtime: RuntimeCRIO, Driver: DriverCgroupfs,
				PodCgroup: "/kubepods/pod" + uid, ContainerCgroup: "/kubepods/pod" + uid + "/crio-" + cid},
		},
		{
			name: "cgroupfs guaranteed containerd",
			path: "/kubepods/pod" + uid + "/" + cid,
			want: Owner{PodUID: uid, QoS: QoSGuaranteed, ContainerID: cid, Driver: DriverCgroupfs,
				PodCgroup: "/kubepods/pod" + uid, ContainerCgroup: "/kubepods/pod" + uid + "/" + cid},
		},
		{
			name: "cgroupfs burstable containerd or docker",
			path: "/kubepods/burstable/pod" + uid + "/" + cid,
			want: Owner{PodUID: uid, QoS: QoSBurstable, ContainerID: cid, Driver: DriverCgroupfs,
				PodCgroup: "/kubepods/burstable/pod" + uid, ContainerCgroup: "/kubepods/burstable/pod" + uid + "/" + cid},
		},
		{
			name: "cgroupfs besteffort",
			path: "/kubepods/besteffort/pod" + uid + "/" + cid,
			want: Owner{PodUID: uid, QoS: QoSBestEffort, ContainerID: cid, Driver: DriverCgroupfs,
				PodCgroup: "/kubepods/besteffort/pod" + uid, ContainerCgroup: "/kubepods/besteffort/pod" + uid + "/" + cid},
		},
		{
			name: "cgroupfs crio burstable",
			path: "/kubepods/burstable/pod" + uid + "/crio-" + cid,
			want: Owner{PodUID: uid, QoS: QoSBurstable, ContainerID: cid, Runtime: RuntimeCRIO, Driver: DriverCgroupfs,
				PodCgroup: "/kubepods/burstable/pod" + uid, ContainerCgroup: "/kubepods/burstable/pod" + uid + "/crio-" + cid},
		},
		{
			name: "cgroupfs crio conmon",
			path: "/kubepods/besteffort/pod" + uid + "/crio-conmon-" + cid,
			want: Owner{PodUID: uid, QoS: QoSBestEffort, ContainerID: cid, Runtime: RuntimeCRIO, Driver: DriverCgroupfs, Conmon: true,
				PodCgroup: "/kubepods/besteffort/pod" + uid, ContainerCgroup: "/kubepods/besteffort/pod" + uid + "/crio-conmon-" + cid},
		},
		{
			name: "cgroupfs crun container leaf",
			path: "/kubepods/burstable/pod" + uid + "/crio-" + cid + "/container",
			want: Owner{PodUID: uid, QoS: QoSBurstable, ContainerID: cid, Runtime: RuntimeCRIO, Driver: DriverCgroupfs,
				PodCgroup: "/kubepods/burstable/pod" + uid, ContainerCgroup: "/kubepods/burstable/pod" + uid + "/crio-" + cid},
		},
		{
			name: "cgroupfs systemd inside the container",
			path: "/kubepods/burstable/pod" + uid + "/crio-" + cid + "/init.scope",
			want: Owner{PodUID: uid, QoS: QoSBurstable, ContainerID: cid, Runtime: RuntimeCRIO, Driver: DriverCgroupfs,
				PodCgroup: "/kubepods/burstable/pod" + uid, ContainerCgroup: "/kubepods/burstable/pod" + uid + "/crio-" + cid},
		},
		{
			name: "cgroupfs service inside the container",
			path: "/kubepods/pod" + uid + "/" + cid + "/system.slice/foo.service",
			want: Owner{PodUID: uid, QoS: QoSGuaranteed, ContainerID: cid, Driver: DriverCgroupfs,
				PodCgroup: "/kubepods/pod" + uid, ContainerCgroup: "/kubepods/pod" + uid + "/" + cid},
		},
		{
			name: "cgroupfs pod cgroup itself",
			path: "/kubepods/burstable/pod" + uid,
			want: Owner{PodUID: uid, QoS: QoSBurstable, Driver: DriverCgroupfs, PodCgroup: "/kubepods/burstable/pod" + uid},
		},
		{
			name: "cgroupfs pod with trailing slash",
			path: "/kubepods/burstable/pod" + uid + "/",
			want: Owner{PodUID: uid, QoS: QoSBurstable, Driver: DriverCgroupfs, PodCgroup: "/kubepods/burstable/pod" + uid},
		},
		{
			name: "cgroupfs pod with unknown child",
			path: "/kubepods/pod" + uid + "/not-a-container",
			want: Owner{PodUID: uid, QoS: QoSGuaranteed, Driver: DriverCgroupfs, PodCgroup: "/kubepods/pod" + uid},
		},
		{
			name: "cgroupfs static pod hash",
			path: "/kubepods/burstable/pod" + static + "/" + cid,
			want: Owner{PodUID: static, QoS: QoSBurstable, ContainerID: cid, Driver: DriverCgroupfs,
				PodCgroup: "/kubepods/burstable/pod" + static, ContainerCgroup: "/kubepods/burstable/pod" + static + "/" + cid},
		},
		{
			name: "cgroupfs under a cgroup root",
			path: "/kubelet/kubepods/besteffort/pod" + uid + "/" + cid,
			want: Owner{PodUID: uid, QoS: QoSBestEffort, ContainerID: cid, Driver: DriverCgroupfs,
				PodCgroup: "/kubelet/kubepods/besteffort/pod" + uid, ContainerCgroup: "/kubelet/kubepods/besteffort/pod" + uid + "/" + cid},
		},
		{
			name: "cgroupfs without leading slash keeps the caller's form",
			path: "kubepods/pod" + uid + "/" + cid,
			want: Owner{PodUID: uid, QoS: QoSGuaranteed, ContainerID: cid, Driver: DriverCgroupfs,
				PodCgroup: "kubepods/pod" + uid, ContainerCgroup: "kubepods/pod" + uid + "/" + cid},
		},
		{
			name: "nested kubepods that is not a pod is skipped",
			path: "/kubepods/burstable/pod" + uid + "/" + cid + "/kubepods/whatever",
			want: Owner{PodUID: uid, QoS: QoSBurstable, ContainerID: cid, Driver: DriverCgroupfs,
				PodCgroup: "/kubepods/burstable/pod" + uid, ContainerCgroup: "/kubepods/burstable/pod" + uid + "/" + cid},
		},
		{
			name: "first kubepods segment not a pod, later one is",
			path: "/kubepods/system/kubepods/pod" + uid,
			want: Owner{PodUID: uid, QoS: QoSGuaranteed, Driver: DriverCgroupfs, PodCgroup: "/kubepods/system/kubepods/pod" + uid},
		},

		// systemd driver.
		{
			name: "systemd burstable containerd",
			path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope",
			want: Owner{PodUID: uid, QoS: QoSBurstable, ContainerID: cid, Runtime: RuntimeContainerd, Driver: DriverSystemd,
				PodCgroup:       "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice",
				ContainerCgroup: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope"},
		},
		{
			name: "systemd besteffort containerd",
			path: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope",
			want: Owner{PodUID: uid, QoS: QoSBestEffort, ContainerID: cid, Runtime: RuntimeContainerd, Driver: DriverSystemd,
				PodCgroup:       "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice",
				ContainerCgroup: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope"},
		},
		{
			name: "systemd guaranteed containerd",
			path: "/kubepods.slice/kubepods-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope",
			want: Owner{PodUID: uid, QoS: QoSGuaranteed, ContainerID: cid, Runtime: RuntimeContainerd, Driver: DriverSystemd,
				PodCgroup:       "/kubepods.slice/kubepods-pod" + uidU + ".slice",
				ContainerCgroup: "/kubepods.slice/kubepods-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope"},
		},
		{
			name: "systemd crio",
			path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/crio-" + cid + ".scope",
			want: Owner{PodUID: uid, QoS: QoSBurstable, ContainerID: cid, Runtime: RuntimeCRIO, Driver: DriverSystemd,
				PodCgroup:       "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice",
				ContainerCgroup: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/crio-" + cid + ".scope"},
		},
		{
			name: "systemd crio conmon",
			path: "/kubepods.slice/kubepods-pod" + uidU + ".slice/crio-conmon-" + cid + ".scope",
			want: Owner{PodUID: uid, QoS: QoSGuaranteed, ContainerID: cid, Runtime: RuntimeCRIO, Driver: DriverSystemd, Conmon: true,
				PodCgroup:       "/kubepods.slice/kubepods-pod" + uidU + ".slice",
				ContainerCgroup: "/kubepods.slice/kubepods-pod" + uidU + ".slice/crio-conmon-" + cid + ".scope"},
		},
		{
			name: "systemd docker",
			path: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/docker-" + cid + ".scope",
			want: Owner{PodUID: uid, QoS: QoSBestEffort, ContainerID: cid, Runtime: RuntimeDocker, Driver: DriverSystemd,
				PodCgroup:       "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice",
				ContainerCgroup: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/docker-" + cid + ".scope"},
		},
		{
			name: "systemd crun container leaf",
			path: "/kubepods.slice/kubepods-pod" + uidU + ".slice/crio-" + cid + ".scope/container",
			want: Owner{PodUID: uid, QoS: QoSGuaranteed, ContainerID: cid, Runtime: RuntimeCRIO, Driver: DriverSystemd,
				PodCgroup:       "/kubepods.slice/kubepods-pod" + uidU + ".slice",
				ContainerCgroup: "/kubepods.slice/kubepods-pod" + uidU + ".slice/crio-" + cid + ".scope"},
		},
		{
			name: "systemd init.scope inside the container",
			path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/crio-" + cid + ".scope/init.scope",
			want: Owner{PodUID: uid, QoS: QoSBurstable, ContainerID: cid, Runtime: RuntimeCRIO, Driver: DriverSystemd,
				PodCgroup:       "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice",
				ContainerCgroup: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/crio-" + cid + ".scope"},
		},
		{
			name: "systemd service inside the container",
			path: "/kubepods.slice/kubepods-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope/system.slice/foo.service",
			want: Owner{PodUID: uid, QoS: QoSGuaranteed, ContainerID: cid, Runtime: RuntimeContainerd, Driver: DriverSystemd,
				PodCgroup:       "/kubepods.slice/kubepods-pod" + uidU + ".slice",
				ContainerCgroup: "/kubepods.slice/kubepods-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope"},
		},
		{
			name: "systemd pod cgroup itself",
			path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice",
			want: Owner{PodUID: uid, QoS: QoSBurstable, Driver: DriverSystemd,
				PodCgroup: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice"},
		},
		{
			name: "systemd static pod hash",
			path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + static + ".slice/cri-containerd-" + cid + ".scope",
			want: Owner{PodUID: static, QoS: QoSBurstable, ContainerID: cid, Runtime: RuntimeContainerd, Driver: DriverSystemd,
				PodCgroup:       "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + static + ".slice",
				ContainerCgroup: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + static + ".slice/cri-containerd-" + cid + ".scope"},
		},
		{
			name: "kind burstable (cgroupRoot=/kubelet)",
			path: "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope",
			want: Owner{PodUID: uid, QoS: QoSBurstable, ContainerID: cid, Runtime: RuntimeContainerd, Driver: DriverSystemd,
				PodCgroup:       "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod" + uidU + ".slice",
				ContainerCgroup: "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope"},
		},
		{
			name: "kind besteffort",
			path: "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope",
			want: Owner{PodUID: uid, QoS: QoSBestEffort, ContainerID: cid, Runtime: RuntimeContainerd, Driver: DriverSystemd,
				PodCgroup:       "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + uidU + ".slice",
				ContainerCgroup: "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope"},
		},
		{
			name: "kind guaranteed",
			path: "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope",
			want: Owner{PodUID: uid, QoS: QoSGuaranteed, ContainerID: cid, Runtime: RuntimeContainerd, Driver: DriverSystemd,
				PodCgroup:       "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod" + uidU + ".slice",
				ContainerCgroup: "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope"},
		},
		{
			name: "kind node seen from the host (docker cgroup v1)",
			path: "/docker/" + cid + "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope",
			want: Owner{PodUID: uid, QoS: QoSGuaranteed, ContainerID: cid, Runtime: RuntimeContainerd, Driver: DriverSystemd,
				PodCgroup:       "/docker/" + cid + "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod" + uidU + ".slice",
				ContainerCgroup: "/docker/" + cid + "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope"},
		},
		{
			name: "systemd pod with non-container scope",
			path: "/kubepods.slice/kubepods-pod" + uidU + ".slice/something.scope",
			want: Owner{PodUID: uid, QoS: QoSGuaranteed, Driver: DriverSystemd, PodCgroup: "/kubepods.slice/kubepods-pod" + uidU + ".slice"},
		},

		// Not pods.
		{name: "empty", path: ""},
		{name: "root", path: "/"},
		{name: "slashes", path: "////"},
		{name: "sshd", path: "/system.slice/sshd.service"},
		{name: "user session", path: "/user.slice/user-1000.slice/session-3.scope"},
		{name: "user manager", path: "/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service"},
		{name: "docker cgroupfs", path: "/docker/" + cid},
		{name: "docker systemd outside kubepods", path: "/system.slice/docker-" + cid + ".scope"},
		{name: "containerd outside kubepods", path: "/system.slice/containerd.service"},
		{name: "kubepods qos only", path: "/kubepods/burstable"},
		{name: "kubepods only", path: "/kubepods"},
		{name: "kubepods.slice only", path: "/kubepods.slice"},
		{name: "kubepods systemd qos only", path: "/kubepods.slice/kubepods-besteffort.slice"},
		{name: "bad uid", path: "/kubepods/burstable/podnot-a-uid/" + cid},
		{name: "short uid", path: "/kubepods/pod30e633b5/" + cid},
		{name: "systemd qos mismatch", path: "/kubepods.slice/kubepods-burstable.slice/kubepods-besteffort-pod" + uidU + ".slice"},
		{name: "systemd prefix mismatch", path: "/kubelet.slice/kubelet-kubepods.slice/kubepods-pod" + uidU + ".slice"},
		{name: "systemd pod without slice suffix", path: "/kubepods.slice/kubepods-pod" + uidU},
		{name: "systemd empty uid", path: "/kubepods.slice/kubepods-pod.slice"},
		{name: "name merely ends in kubepods", path: "/mykubepods/pod" + uid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ParsePath(tc.path)
			if got != tc.want {
				t.Errorf("ParsePath(%q)\n got %+v\nwant %+v", tc.path, got, tc.want)
			}
			if got.InPod() != (tc.want.PodUID != "") {
				t.Errorf("InPod() = %v", got.InPod())
			}
		})
	}
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{
		"", "/", "//kubepods//", "/kubepods/pod" + uid + "/crio-" + cid,
		"/kubepods/burstable/pod" + uid + "/" + cid + "/container",
		"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope",
		"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod" + uidU + ".slice/crio-conmon-" + cid + ".scope",
		"kubepods.slice/kubepods-pod.slice", "-kubepods.slice/-pod.slice", "/system.slice/docker-" + cid + ".scope",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		o := ParsePath(p)
		if !strings.HasPrefix(p, o.PodCgroup) || !strings.HasPrefix(p, o.ContainerCgroup) {
			t.Fatalf("ParsePath(%q) = %+v: cgroups are not prefixes of the input", p, o)
		}
		if o.ContainerCgroup != "" && !strings.HasPrefix(o.ContainerCgroup, o.PodCgroup+"/") {
			t.Fatalf("ParsePath(%q) = %+v: container cgroup outside pod cgroup", p, o)
		}
		if !o.InPod() && o != (Owner{}) {
			t.Fatalf("ParsePath(%q) = %+v: not in a pod but not zero", p, o)
		}
		if o.ContainerID != "" && o.ContainerCgroup == "" {
			t.Fatalf("ParsePath(%q) = %+v: container id without cgroup", p, o)
		}
		// Parsing the pod or container cgroup again must find the same pod.
		if o.InPod() {
			if again := ParsePath(o.PodCgroup); again.PodUID != o.PodUID || again.QoS != o.QoS {
				t.Fatalf("ParsePath(%q) pod %+v, but its PodCgroup gives %+v", p, o, again)
			}
		}
	})
}

func TestParseDockerPath(t *testing.T) {
	tests := map[string]Owner{
		"/docker/" + cid: {ContainerID: cid, Runtime: RuntimeDocker, Driver: DriverCgroupfs, ContainerCgroup: "/docker/" + cid},
		"/docker/" + cid + "/sub": {ContainerID: cid, Runtime: RuntimeDocker, Driver: DriverCgroupfs,
			ContainerCgroup: "/docker/" + cid},
		"/system.slice/docker-" + cid + ".scope": {ContainerID: cid, Runtime: RuntimeDocker, Driver: DriverSystemd,
			ContainerCgroup: "/system.slice/docker-" + cid + ".scope"},
		"/system.slice/docker.service":            {},
		"/docker/" + cid[:12]:                     {},
		"/system.slice/docker-" + cid[:40]:        {},
		"/system.slice/containerd.service":        {},
		"/kubepods/pod" + uid + "/" + cid:         {},
		"":                                        {},
		"/docker":                                 {},
		"/system.slice/docker-" + cid + ".scopex": {},
	}
	for path, want := range tests {
		if got := ParseDockerPath(path); got != want {
			t.Errorf("ParseDockerPath(%q) = %+v, want %+v", path, got, want)
		}
	}
}

// parseDockerPathRef is ParseDockerPath written over splitPath's
// segments, as it was first: FuzzParseDockerPath holds the two equal.
func parseDockerPathRef(p string) Owner {
	segs := splitPath(p)
	for i, s := range segs {
		if s.name == "docker" && i+1 < len(segs) && isContainerID(segs[i+1].name) {
			return Owner{ContainerID: segs[i+1].name, Runtime: RuntimeDocker, Driver: DriverCgroupfs,
				ContainerCgroup: p[:segs[i+1].end]}
		}
		if id, ok := strings.CutPrefix(s.name, "docker-"); ok {
			if id, ok = strings.CutSuffix(id, ".scope"); ok && isContainerID(id) {
				return Owner{ContainerID: id, Runtime: RuntimeDocker, Driver: DriverSystemd, ContainerCgroup: p[:s.end]}
			}
		}
	}
	return Owner{}
}

func FuzzParseDockerPath(f *testing.F) {
	f.Add("/docker/" + cid)
	f.Add("/system.slice/docker-" + cid + ".scope/x")
	f.Add("//docker//" + cid)
	f.Add("/docker/docker/" + cid)
	f.Add("xdocker/" + cid + "/docker-" + cid + ".scope")
	f.Fuzz(func(t *testing.T, p string) {
		if got, want := ParseDockerPath(p), parseDockerPathRef(p); got != want {
			t.Fatalf("ParseDockerPath(%q) = %+v, segment version %+v", p, got, want)
		}
	})
}
