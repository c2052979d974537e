// Package cli is podwarden's command line: the streams commands write to,
// the root command, and the node diagnostics (ps, victims, events,
// version), which need nothing but /proc, the cgroup tree and the kernel
// log. It is shared by two binaries: cmd/podwarden, kept small because an
// on-call engineer runs it on a node that is already short of memory, and
// cmd/podwarden-full, which adds the commands that link Kubernetes, CRI,
// NRI and registry clients (agent, nri, image, status).
package cli
