package cri

import (
	"encoding/json"
	"fmt"
)

// verboseInfo is the part of ContainerStatus's verbose Info["info"] JSON
// that podwarden reads. containerd (internal/cri/server/container_status.go,
// ContainerInfo) and CRI-O (server/container_status.go, containerInfo) both
// marshal a struct with these three keys; runtimeSpec is the container's OCI
// spec, whose linux.cgroupsPath is what the runtime handed to runc or crun.
// Everything else in the object (config, snapshotter, privileged...) is
// ignored, so new keys in later runtime versions do not break parsing.
type verboseInfo struct {
	SandboxID   string `json:"sandboxID"`
	Pid         int64  `json:"pid"`
	RuntimeSpec *struct {
		Linux *struct {
			CgroupsPath string `json:"cgroupsPath"`
		} `json:"linux"`
	} `json:"runtimeSpec"`
}

type containerInfo struct {
	pid         int
	cgroupsPath string
	sandboxID   string
}

// maxPID is the kernel's PID_MAX_LIMIT (4M); anything above is not a PID.
const maxPID = 1 << 22

// parseInfo reads the verbose info map. A map without "info" (the
// cri-client fake, runtimes that return nothing verbose) gives a zero
// containerInfo and no error: the caller falls back to cgroup scanning.
func parseInfo(info map[string]string) (containerInfo, error) {
	raw, ok := info["info"]
	if !ok || raw == "" {
		return containerInfo{}, nil
	}
	return parseInfoJSON([]byte(raw))
}

func parseInfoJSON(b []byte) (containerInfo, error) {
	var v verboseInfo
	if err := json.Unmarshal(b, &v); err != nil {
		return containerInfo{}, fmt.Errorf("parsing info JSON: %w", err)
	}
	if v.Pid < 0 || v.Pid > maxPID {
		return containerInfo{}, fmt.Errorf("parsing info JSON: pid %d out of range", v.Pid)
	}
	ci := containerInfo{pid: int(v.Pid), sandboxID: v.SandboxID}
	if v.RuntimeSpec != nil && v.RuntimeSpec.Linux != nil {
		ci.cgroupsPath = v.RuntimeSpec.Linux.CgroupsPath
	}
	return ci, nil
}
