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
	// The pod cgroups most cases are in.
	const (
		fsG  = "/kubepods/pod" + uid
		fsBu = "/kubepods/burstable/pod" + uid
		fsBe = "/kubepods/besteffort/pod" + uid
		sdG  = "/kubepods.slice/kubepods-pod" + uidU + ".slice"
		sdBu = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice"
		sdBe = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice"
		// kind: kubelet's cgroupRoot=/kubelet under the systemd driver.
		kindBu = "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod" + uidU + ".slice"
		kindBe = "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + uidU + ".slice"
		kindG  = "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod" + uidU + ".slice"
	)
	tests := []struct {
		name string
		path string
		pod  string // want.PodCgroup
		ctr  string // the container's level below pod: want.ContainerCgroup is pod/ctr
		want Owner  // without the two cgroups
	}{
		// cgroupfs driver.
		{name: "seed crio besteffort-less guaranteed", path: fsG + "/crio-" + cid, pod: fsG, ctr: "crio-" + cid,
			want: Owner{PodUID: uid, QoS: QoSGuaranteed, ContainerID: cid, Runtime: RuntimeCRIO, Driver: DriverCgroupfs}},
		{name: "cgroupfs guaranteed containerd", path: fsG + "/" + cid, pod: fsG, ctr: cid,
			want: Owner{PodUID: uid, QoS: QoSGuaranteed, ContainerID: cid, Driver: DriverCgroupfs}},
		{name: "cgroupfs burstable containerd or docker", path: fsBu + "/" + cid, pod: fsBu, ctr: cid,
			want: Owner{PodUID: uid, QoS: QoSBurstable, ContainerID: cid, Driver: DriverCgroupfs}},
		{name: "cgroupfs besteffort", path: fsBe + "/" + cid, pod: fsBe, ctr: cid,
			want: Owner{PodUID: uid, QoS: QoSBestEffort, ContainerID: cid, Driver: DriverCgroupfs}},
		{name: "cgroupfs crio burstable", path: fsBu + "/crio-" + cid, pod: fsBu, ctr: "crio-" + cid,
			want: Owner{PodUID: uid, QoS: QoSBurstable, ContainerID: cid, Runtime: RuntimeCRIO, Driver: DriverCgroupfs}},
		{name: "cgroupfs crio conmon", path: fsBe + "/crio-conmon-" + cid, pod: fsBe, ctr: "crio-conmon-" + cid,
			want: Owner{PodUID: uid, QoS: QoSBestEffort, ContainerID: cid, Runtime: RuntimeCRIO, Driver: DriverCgroupfs, Conmon: true}},
		{name: "cgroupfs crun container leaf", path: fsBu + "/crio-" + cid + "/container", pod: fsBu, ctr: "crio-" + cid,
			want: Owner{PodUID: uid, QoS: QoSBurstable, ContainerID: cid, Runtime: RuntimeCRIO, Driver: DriverCgroupfs}},
		{name: "cgroupfs systemd inside the container", path: fsBu + "/crio-" + cid + "/init.scope", pod: fsBu, ctr: "crio-" + cid,
			want: Owner{PodUID: uid, QoS: QoSBurstable, ContainerID: cid, Runtime: RuntimeCRIO, Driver: DriverCgroupfs}},
		{name: "cgroupfs service inside the container", path: fsG + "/" + cid + "/system.slice/foo.service", pod: fsG, ctr: cid,
			want: Owner{PodUID: uid, QoS: QoSGuaranteed, ContainerID: cid, Driver: DriverCgroupfs}},
		{name: "cgroupfs pod cgroup itself", path: fsBu, pod: fsBu,
			want: Owner{PodUID: uid, QoS: QoSBurstable, Driver: DriverCgroupfs}},
		{name: "cgroupfs pod with trailing slash", path: fsBu + "/", pod: fsBu,
			want: Owner{PodUID: uid, QoS: QoSBurstable, Driver: DriverCgroupfs}},
		{name: "cgroupfs pod with unknown child", path: fsG + "/not-a-container", pod: fsG,
			want: Owner{PodUID: uid, QoS: QoSGuaranteed, Driver: DriverCgroupfs}},
		{name: "cgroupfs static pod hash", path: "/kubepods/burstable/pod" + static + "/" + cid, pod: "/kubepods/burstable/pod" + static, ctr: cid,
			want: Owner{PodUID: static, QoS: QoSBurstable, ContainerID: cid, Driver: DriverCgroupfs}},
		{name: "cgroupfs under a cgroup root", path: "/kubelet/kubepods/besteffort/pod" + uid + "/" + cid, pod: "/kubelet/kubepods/besteffort/pod" + uid, ctr: cid,
			want: Owner{PodUID: uid, QoS: QoSBestEffort, ContainerID: cid, Driver: DriverCgroupfs}},
		{name: "cgroupfs without leading slash keeps the caller's form", path: "kubepods/pod" + uid + "/" + cid, pod: "kubepods/pod" + uid, ctr: cid,
			want: Owner{PodUID: uid, QoS: QoSGuaranteed, ContainerID: cid, Driver: DriverCgroupfs}},
		{name: "nested kubepods that is not a pod is skipped", path: fsBu + "/" + cid + "/kubepods/whatever", pod: fsBu, ctr: cid,
			want: Owner{PodUID: uid, QoS: QoSBurstable, ContainerID: cid, Driver: DriverCgroupfs}},
		{name: "first kubepods segment not a pod, later one is", path: "/kubepods/system/kubepods/pod" + uid, pod: "/kubepods/system/kubepods/pod" + uid,
			want: Owner{PodUID: uid, QoS: QoSGuaranteed, Driver: DriverCgroupfs}},

		// systemd driver.
		{name: "systemd burstable containerd", path: sdBu + "/cri-containerd-" + cid + ".scope", pod: sdBu, ctr: "cri-containerd-" + cid + ".scope",
			want: Owner{PodUID: uid, QoS: QoSBurstable, ContainerID: cid, Runtime: RuntimeContainerd, Driver: DriverSystemd}},
		{name: "systemd besteffort containerd", path: sdBe + "/cri-containerd-" + cid + ".scope", pod: sdBe, ctr: "cri-containerd-" + cid + ".scope",
			want: Owner{PodUID: uid, QoS: QoSBestEffort, ContainerID: cid, Runtime: RuntimeContainerd, Driver: DriverSystemd}},
		{name: "systemd guaranteed containerd", path: sdG + "/cri-containerd-" + cid + ".scope", pod: sdG, ctr: "cri-containerd-" + cid + ".scope",
			want: Owner{PodUID: uid, QoS: QoSGuaranteed, ContainerID: cid, Runtime: RuntimeContainerd, Driver: DriverSystemd}},
		{name: "systemd crio", path: sdBu + "/crio-" + cid + ".scope", pod: sdBu, ctr: "crio-" + cid + ".scope",
			want: Owner{PodUID: uid, QoS: QoSBurstable, ContainerID: cid, Runtime: RuntimeCRIO, Driver: DriverSystemd}},
		{name: "systemd crio conmon", path: sdG + "/crio-conmon-" + cid + ".scope", pod: sdG, ctr: "crio-conmon-" + cid + ".scope",
			want: Owner{PodUID: uid, QoS: QoSGuaranteed, ContainerID: cid, Runtime: RuntimeCRIO, Driver: DriverSystemd, Conmon: true}},
		{name: "systemd docker", path: sdBe + "/docker-" + cid + ".scope", pod: sdBe, ctr: "docker-" + cid + ".scope",
			want: Owner{PodUID: uid, QoS: QoSBestEffort, ContainerID: cid, Runtime: RuntimeDocker, Driver: DriverSystemd}},
		{name: "systemd crun container leaf", path: sdG + "/crio-" + cid + ".scope/container", pod: sdG, ctr: "crio-" + cid + ".scope",
			want: Owner{PodUID: uid, QoS: QoSGuaranteed, ContainerID: cid, Runtime: RuntimeCRIO, Driver: DriverSystemd}},
		{name: "systemd init.scope inside the container", path: sdBu + "/crio-" + cid + ".scope/init.scope", pod: sdBu, ctr: "crio-" + cid + ".scope",
			want: Owner{PodUID: uid, QoS: QoSBurstable, ContainerID: cid, Runtime: RuntimeCRIO, Driver: DriverSystemd}},
		{name: "systemd service inside the container", path: sdG + "/cri-containerd-" + cid + ".scope/system.slice/foo.service", pod: sdG, ctr: "cri-containerd-" + cid + ".scope",
			want: Owner{PodUID: uid, QoS: QoSGuaranteed, ContainerID: cid, Runtime: RuntimeContainerd, Driver: DriverSystemd}},
		{name: "systemd pod cgroup itself", path: sdBu, pod: sdBu,
			want: Owner{PodUID: uid, QoS: QoSBurstable, Driver: DriverSystemd}},
		{name: "systemd static pod hash", path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + static + ".slice/cri-containerd-" + cid + ".scope", pod: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + static + ".slice", ctr: "cri-containerd-" + cid + ".scope",
			want: Owner{PodUID: static, QoS: QoSBurstable, ContainerID: cid, Runtime: RuntimeContainerd, Driver: DriverSystemd}},
		{name: "kind burstable (cgroupRoot=/kubelet)", path: kindBu + "/cri-containerd-" + cid + ".scope", pod: kindBu, ctr: "cri-containerd-" + cid + ".scope",
			want: Owner{PodUID: uid, QoS: QoSBurstable, ContainerID: cid, Runtime: RuntimeContainerd, Driver: DriverSystemd}},
		{name: "kind besteffort", path: kindBe + "/cri-containerd-" + cid + ".scope", pod: kindBe, ctr: "cri-containerd-" + cid + ".scope",
			want: Owner{PodUID: uid, QoS: QoSBestEffort, ContainerID: cid, Runtime: RuntimeContainerd, Driver: DriverSystemd}},
		{name: "kind guaranteed", path: kindG + "/cri-containerd-" + cid + ".scope", pod: kindG, ctr: "cri-containerd-" + cid + ".scope",
			want: Owner{PodUID: uid, QoS: QoSGuaranteed, ContainerID: cid, Runtime: RuntimeContainerd, Driver: DriverSystemd}},
		{name: "kind node seen from the host (docker cgroup v1)", path: "/docker/" + cid + kindG + "/cri-containerd-" + cid + ".scope", pod: "/docker/" + cid + kindG, ctr: "cri-containerd-" + cid + ".scope",
			want: Owner{PodUID: uid, QoS: QoSGuaranteed, ContainerID: cid, Runtime: RuntimeContainerd, Driver: DriverSystemd}},
		{name: "systemd pod with non-container scope", path: sdG + "/something.scope", pod: sdG,
			want: Owner{PodUID: uid, QoS: QoSGuaranteed, Driver: DriverSystemd}},

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
		if tc.pod != "" {
			tc.want.PodCgroup = tc.pod
		}
		if tc.ctr != "" {
			tc.want.ContainerCgroup = tc.pod + "/" + tc.ctr
		}
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
