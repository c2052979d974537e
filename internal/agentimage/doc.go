// Package agentimage is the one recipe for podwarden's container image, the
// image the DaemonSet runs: the static podwarden-agent binary built from
// this tree, alone in a scratch-like linux/amd64 OCI image (entrypoint
// /podwarden, command agent, user 0:0, OCI labels), with fixed file times
// so the same source gives the same digest. It needs no container engine
// and no base image, so `make image` and internal/nodetest build the same
// image offline.
package agentimage
