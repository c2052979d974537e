package podname

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// Pod is a pod as a node knows it.
type Pod struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
}

// String is namespace/name, or the UID when the name is not known.
func (p Pod) String() string {
	if p.Name == "" {
		return p.UID
	}
	return p.Namespace + "/" + p.Name
}

// Lister lists the pods one source knows.
type Lister interface {
	Pods(ctx context.Context) ([]Pod, error)
}

// ListerFunc adapts a function to Lister.
type ListerFunc func(ctx context.Context) ([]Pod, error)

// Pods implements Lister.
func (f ListerFunc) Pods(ctx context.Context) ([]Pod, error) { return f(ctx) }

// DefaultLogDir is where the kubelet keeps a directory per pod.
const DefaultLogDir = "/var/log/pods"

// LogDir lists pods from the kubelet's pod log directories under a root.
type LogDir struct{ root string }

var _ Lister = LogDir{}

// NewLogDir reads pods from root (DefaultLogDir on a node).
func NewLogDir(root string) LogDir { return LogDir{root: root} }

// Pods implements Lister. A missing root (not a node, or a container
// without the mount) lists nothing and is not an error; entries that are
// not pod directories are skipped.
func (d LogDir) Pods(context.Context) ([]Pod, error) {
	entries, err := os.ReadDir(d.root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading pod log directories: %w", err)
	}
	pods := make([]Pod, 0, len(entries))
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if p, ok := ParseLogDir(e.Name()); ok {
			pods = append(pods, p)
		}
	}
	return pods, nil
}

// ParseLogDir parses a pod log directory name, <namespace>_<name>_<uid>
// (kubelet's BuildPodLogsDirectory). Namespaces, pod names and UIDs never
// contain "_", so the name splits in exactly three non-empty parts.
func ParseLogDir(dir string) (Pod, bool) {
	parts := strings.Split(dir, "_")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return Pod{}, false
	}
	for _, p := range parts {
		if strings.ContainsAny(p, "/\x00") {
			return Pod{}, false
		}
	}
	return Pod{Namespace: parts[0], Name: parts[1], UID: parts[2]}, true
}
