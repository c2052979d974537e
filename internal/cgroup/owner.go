package cgroup

import (
	"strings"
)

// QoS is a pod's Kubernetes quality-of-service class as encoded in its
// cgroup path.
type QoS string

const (
	QoSGuaranteed QoS = "guaranteed"
	QoSBurstable  QoS = "burstable"
	QoSBestEffort QoS = "besteffort"
)

// Runtime names the container runtime that created a container cgroup, when
// the path tells. The cgroupfs driver's bare 64-hex names are shared by
// containerd and Docker, so they yield "".
type Runtime string

const (
	RuntimeContainerd Runtime = "containerd"
	RuntimeCRIO       Runtime = "cri-o"
	RuntimeDocker     Runtime = "docker"
)

// Driver is the kubelet cgroup driver that laid out the path.
type Driver string

const (
	DriverCgroupfs Driver = "cgroupfs"
	DriverSystemd  Driver = "systemd"
)

// Owner is what a cgroup path says about who owns it. The zero value means
// "not a Kubernetes pod".
type Owner struct {
	PodUID      string  `json:"pod_uid,omitempty"`
	QoS         QoS     `json:"qos,omitempty"`
	ContainerID string  `json:"container_id,omitempty"`
	Runtime     Runtime `json:"runtime,omitempty"`
	Driver      Driver  `json:"driver,omitempty"`
	// Conmon marks CRI-O's monitor scope (crio-conmon-<id>.scope): it
	// belongs to the pod but is not the container's own process tree.
	Conmon bool `json:"conmon,omitempty"`
	// PodCgroup and ContainerCgroup are the path prefixes of the pod and
	// container cgroups; anything deeper (crun's "container" leaf, a
	// systemd tree inside the container) belongs to the same container.
	PodCgroup       string `json:"pod_cgroup,omitempty"`
	ContainerCgroup string `json:"container_cgroup,omitempty"`
}

// InPod reports whether the path lies inside a Kubernetes pod cgroup.
func (o Owner) InPod() bool { return o.PodUID != "" }

// ParsePath attributes a cgroup path (as printed in /proc/PID/cgroup or in a
// kernel OOM report) to a pod and container. It needs no I/O and never
// fails: a path it does not recognise yields the zero Owner.
//
// Layouts (see docs/cgroup-layouts.md):
//
//	cgroupfs: .../kubepods[/burstable|/besteffort]/pod<uid>/<id>|crio-<id>[/...]
//	systemd:  .../kubepods.slice[/kubepods-<qos>.slice]/kubepods[-<qos>]-pod<uid_>.slice/<prefix>-<id>.scope[/...]
func ParsePath(p string) Owner {
	segs := strings.Split(strings.Trim(p, "/"), "/")
	for i, s := range segs {
		switch {
		case s == "kubepods":
			return parseCgroupfs(segs, i)
		case s == "kubepods.slice":
			return parseSystemd(segs, i)
		}
	}
	return Owner{}
}

func joinPath(segs []string) string { return "/" + strings.Join(segs, "/") }

func parseCgroupfs(segs []string, i int) Owner {
	o := Owner{Driver: DriverCgroupfs, QoS: QoSGuaranteed}
	j := i + 1
	if j < len(segs) {
		switch segs[j] {
		case "burstable":
			o.QoS = QoSBurstable
			j++
		case "besteffort":
			o.QoS = QoSBestEffort
			j++
		}
	}
	if j >= len(segs) || !strings.HasPrefix(segs[j], "pod") || !isUID(segs[j][3:]) {
		return Owner{}
	}
	o.PodUID = segs[j][3:]
	o.PodCgroup = joinPath(segs[:j+1])
	j++
	if j >= len(segs) {
		return o
	}
	name := segs[j]
	switch {
	case strings.HasPrefix(name, "crio-conmon-") && isContainerID(name[len("crio-conmon-"):]):
		o.ContainerID, o.Runtime, o.Conmon = name[len("crio-conmon-"):], RuntimeCRIO, true
	case strings.HasPrefix(name, "crio-") && isContainerID(name[len("crio-"):]):
		o.ContainerID, o.Runtime = name[len("crio-"):], RuntimeCRIO
	case isContainerID(name):
		o.ContainerID = name
	default:
		return o
	}
	o.ContainerCgroup = joinPath(segs[:j+1])
	return o
}

func parseSystemd(segs []string, i int) Owner {
	o := Owner{Driver: DriverSystemd, QoS: QoSGuaranteed}
	j := i + 1
	if j < len(segs) {
		switch segs[j] {
		case "kubepods-burstable.slice":
			o.QoS = QoSBurstable
			j++
		case "kubepods-besteffort.slice":
			o.QoS = QoSBestEffort
			j++
		}
	}
	if j >= len(segs) {
		return Owner{}
	}
	prefix := "kubepods-pod"
	if o.QoS != QoSGuaranteed {
		prefix = "kubepods-" + string(o.QoS) + "-pod"
	}
	name := segs[j]
	if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, ".slice") {
		return Owner{}
	}
	uid := strings.ReplaceAll(name[len(prefix):len(name)-len(".slice")], "_", "-")
	if !isUID(uid) {
		return Owner{}
	}
	o.PodUID = uid
	o.PodCgroup = joinPath(segs[:j+1])
	j++
	if j >= len(segs) {
		return o
	}
	name = segs[j]
	if !strings.HasSuffix(name, ".scope") {
		return o
	}
	unit := strings.TrimSuffix(name, ".scope")
	for _, k := range []struct {
		prefix  string
		runtime Runtime
		conmon  bool
	}{
		{"cri-containerd-", RuntimeContainerd, false},
		{"crio-conmon-", RuntimeCRIO, true},
		{"crio-", RuntimeCRIO, false},
		{"docker-", RuntimeDocker, false},
	} {
		if id, ok := strings.CutPrefix(unit, k.prefix); ok && isContainerID(id) {
			o.ContainerID, o.Runtime, o.Conmon = id, k.runtime, k.conmon
			o.ContainerCgroup = joinPath(segs[:j+1])
			return o
		}
	}
	return o
}

// isUID accepts the dashed 36-character form kubelet uses for pod UIDs. Static
// pods use a 32-hex config hash instead, which is accepted too.
func isUID(s string) bool {
	switch len(s) {
	case 36:
		for i := 0; i < len(s); i++ {
			c := s[i]
			if i == 8 || i == 13 || i == 18 || i == 23 {
				if c != '-' {
					return false
				}
				continue
			}
			if !isHex(c) {
				return false
			}
		}
		return true
	case 32:
		return isHexString(s)
	}
	return false
}

// isContainerID accepts the 64-hex ids that containerd, CRI-O and Docker use.
func isContainerID(s string) bool { return len(s) == 64 && isHexString(s) }

func isHexString(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return s != ""
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }
