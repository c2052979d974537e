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
// fails: a path it does not recognise yields the zero Owner. PodCgroup and
// ContainerCgroup are always prefixes of p, so callers can compare them with
// other paths read from the same source.
//
// Layouts (see docs/cgroup-layouts.md):
//
//	cgroupfs: .../kubepods[/burstable|/besteffort]/pod<uid>/<id>|crio-<id>[/...]
//	systemd:  .../<P>.slice[/<P>-<qos>.slice]/<P>[-<qos>]-pod<uid_>.slice/<prefix>-<id>.scope[/...]
//
// where <P> is "kubepods", or "<root>-kubepods" when kubelet runs with a
// cgroupRoot under the systemd driver: kind sets cgroupRoot=/kubelet, which
// systemd expands to kubelet.slice/kubelet-kubepods.slice/
// kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod<uid_>.slice.
func ParsePath(p string) Owner {
	segs := splitPath(p)
	// A path can hold more than one kubepods-like segment (a kubelet nested
	// inside a pod, or a directory that merely has the name); the first one
	// that parses as a pod wins because it is the outermost, real, pod.
	for i, s := range segs {
		var o Owner
		switch {
		case s.name == "kubepods":
			o = parseCgroupfs(p, segs, i)
		case s.name == "kubepods.slice" || strings.HasSuffix(s.name, "-kubepods.slice"):
			o = parseSystemd(p, segs, i)
		}
		if o.InPod() {
			return o
		}
	}
	return Owner{}
}

// segment is one path component and the offset in the original path just
// past it, so prefixes are cut from the caller's own string instead of being
// rebuilt (a rebuilt "/a/b" would not match an input of "a/b" or "//a/b").
type segment struct {
	name string
	end  int
}

func splitPath(p string) []segment {
	var segs []segment
	for i := 0; i < len(p); {
		if p[i] == '/' {
			i++
			continue
		}
		j := strings.IndexByte(p[i:], '/')
		if j < 0 {
			j = len(p) - i
		}
		segs = append(segs, segment{name: p[i : i+j], end: i + j})
		i += j
	}
	return segs
}

func parseCgroupfs(p string, segs []segment, i int) Owner {
	o := Owner{Driver: DriverCgroupfs}
	j := o.qosLevel(segs, i+1, "burstable", "besteffort")
	if j >= len(segs) {
		return Owner{}
	}
	uid, ok := strings.CutPrefix(segs[j].name, "pod")
	if !ok || !isUID(uid) {
		return Owner{}
	}
	if j = o.podLevel(p, segs, j, uid); j >= len(segs) {
		return o
	}
	name := segs[j].name
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
	o.ContainerCgroup = p[:segs[j].end]
	return o
}

// qosLevel reads the QoS level segs[j] of a driver that names the two
// lower classes burstable and besteffort; Guaranteed pods have no such
// level. It returns the index of the pod level.
func (o *Owner) qosLevel(segs []segment, j int, burstable, besteffort string) int {
	o.QoS = QoSGuaranteed
	if j < len(segs) {
		switch segs[j].name {
		case burstable:
			o.QoS = QoSBurstable
			return j + 1
		case besteffort:
			o.QoS = QoSBestEffort
			return j + 1
		}
	}
	return j
}

// podLevel records segs[j] of p as the cgroup of the pod uid. It returns
// the index of the container level.
func (o *Owner) podLevel(p string, segs []segment, j int, uid string) int {
	o.PodUID = uid
	o.PodCgroup = p[:segs[j].end]
	return j + 1
}

func parseSystemd(p string, segs []segment, i int) Owner {
	o := Owner{Driver: DriverSystemd}
	// systemd encodes the hierarchy in the unit name: every level repeats
	// its parent's name plus "-<part>", so all names below share base.
	base := strings.TrimSuffix(segs[i].name, ".slice")
	j := o.qosLevel(segs, i+1, base+"-burstable.slice", base+"-besteffort.slice")
	if j >= len(segs) {
		return Owner{}
	}
	prefix := base + "-pod"
	if o.QoS != QoSGuaranteed {
		prefix = base + "-" + string(o.QoS) + "-pod"
	}
	name := segs[j].name
	if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, ".slice") || len(name) < len(prefix)+len(".slice") {
		return Owner{}
	}
	uid := strings.ReplaceAll(name[len(prefix):len(name)-len(".slice")], "_", "-")
	if !isUID(uid) {
		return Owner{}
	}
	if j = o.podLevel(p, segs, j, uid); j >= len(segs) {
		return o
	}
	unit, ok := strings.CutSuffix(segs[j].name, ".scope")
	if !ok {
		return o
	}
	for _, k := range scopePrefixes {
		if id, ok := strings.CutPrefix(unit, k.prefix); ok && isContainerID(id) {
			o.ContainerID, o.Runtime, o.Conmon = id, k.runtime, k.conmon
			o.ContainerCgroup = p[:segs[j].end]
			return o
		}
	}
	return o
}

// scopePrefixes are the runtimes' names for a container's systemd scope,
// <prefix><id>.scope; CRI-O's conmon comes before CRI-O's own prefix, which
// it starts with.
var scopePrefixes = []struct {
	prefix  string
	runtime Runtime
	conmon  bool
}{
	{"cri-containerd-", RuntimeContainerd, false},
	{"crio-conmon-", RuntimeCRIO, true},
	{"crio-", RuntimeCRIO, false},
	{"docker-", RuntimeDocker, false},
}

// ParseDockerPath attributes a cgroup path outside Kubernetes to a Docker
// container: /docker/<id> (cgroupfs driver) or .../docker-<id>.scope
// (systemd driver), with anything deeper belonging to the container. It
// never fails: other paths yield the zero Owner. Docker containers inside
// pods (dockershim) are ParsePath's.
func ParseDockerPath(p string) Owner {
	// By hand, without splitPath's slice: it runs for every victim of
	// every report `podwarden events` reads.
	for off := 0; ; {
		i := strings.Index(p[off:], "docker")
		if i < 0 {
			return Owner{}
		}
		start := off + i
		off = start + 1
		if start > 0 && p[start-1] != '/' {
			continue
		}
		end := start + strings.IndexByte(p[start:]+"/", '/')
		name := p[start:end]
		if name == "docker" {
			next := end
			for next < len(p) && p[next] == '/' {
				next++
			}
			idEnd := next + strings.IndexByte(p[next:]+"/", '/')
			if isContainerID(p[next:idEnd]) {
				return Owner{ContainerID: p[next:idEnd], Runtime: RuntimeDocker, Driver: DriverCgroupfs, ContainerCgroup: p[:idEnd]}
			}
			continue
		}
		if id, ok := strings.CutPrefix(name, "docker-"); ok {
			if id, ok = strings.CutSuffix(id, ".scope"); ok && isContainerID(id) {
				return Owner{ContainerID: id, Runtime: RuntimeDocker, Driver: DriverSystemd, ContainerCgroup: p[:end]}
			}
		}
	}
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
