// Command podwarden shows who the Linux OOM killer takes down on a
// Kubernetes node (ps, victims, events). It stays small on purpose: it is
// run on nodes that are already short of memory. agent and nri live in
// podwarden-agent, image and status in podwarden-cluster; this binary runs
// them for those commands. See README.md.
package main

import "podwarden/internal/cli"

func main() { cli.Main(delegated()...) }
