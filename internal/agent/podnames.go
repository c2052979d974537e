package agent

import (
	"context"
	"time"

	"podwarden/internal/podname"
)

// podNames names pods without a runtime, from the kubelet's pod log
// directories (/var/log/pods/<namespace>_<name>_<uid>): a local directory
// read, never a network call, so it may run on the protection path. It
// holds only the pods of its last read, so it does not grow with pod
// churn, and re-reads at most once a second when asked for a pod it does
// not know.
type podNames struct {
	dir    podname.Lister // nil: names are not known
	byUID  map[string]podname.Pod
	loaded time.Time
}

// reloadEvery bounds directory reads when pods the kubelet has not named
// yet (or that are not kubelet pods) are asked for in a burst.
const reloadEvery = time.Second

func newPodNames(dir string) podNames {
	if dir == "" {
		return podNames{}
	}
	return podNames{dir: podname.NewLogDir(dir)}
}

// lookup returns the pod with uid, if the kubelet's directories name it.
func (n *podNames) lookup(uid string) (podname.Pod, bool) {
	if n.dir == nil || uid == "" {
		return podname.Pod{}, false
	}
	if p, ok := n.byUID[uid]; ok {
		return p, true
	}
	if time.Since(n.loaded) < reloadEvery {
		return podname.Pod{}, false
	}
	n.loaded = time.Now()
	pods, err := n.dir.Pods(context.Background())
	if err != nil {
		return podname.Pod{}, false
	}
	n.byUID = make(map[string]podname.Pod, len(pods))
	for _, p := range pods {
		n.byUID[p.UID] = p
	}
	p, ok := n.byUID[uid]
	return p, ok
}
