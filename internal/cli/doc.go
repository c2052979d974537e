// Package cli is podwarden's command line: the streams commands write to,
// the root command, and the node diagnostics (ps, victims, events,
// version), which need nothing but /proc, the cgroup tree and the kernel
// log. It is shared by three binaries: cmd/podwarden, kept small because
// an on-call engineer runs it on a node that is already short of memory;
// cmd/podwarden-agent, which adds agent and nri (CRI, NRI and Prometheus
// clients; what the DaemonSet runs); and cmd/podwarden-cluster, which adds
// image and status (client-go and registry clients).
package cli
