// Command podwarden shows who the Linux OOM killer takes down on a
// Kubernetes node (ps, victims, events). It stays small on purpose: it is
// run on nodes that are already short of memory, and it never makes a
// network call to name a pod (the kubelet's log directories do). agent and
// nri live in podwarden-agent, image and status in podwarden-cluster; this
// binary runs them for those commands. See README.md.
package main

import "podwarden/internal/cli"

func main() {
	cli.Binary{
		Name:       "podwarden",
		Commands:   delegated(),
		Companions: []string{agentBinary, clusterBinary},
	}.Main()
}
