// Package agentimage is the one recipe for podwarden's container image, the
// image the DaemonSet runs: the static podwarden-agent binary built from
// this tree, alone in a scratch-like OCI image (entrypoint /podwarden,
// command agent, user 0:0, OCI labels), one per platform (Arches), joined
// by Index into the multi-platform image a release publishes. Fixed file
// times make the same source give the same digest. It needs no container
// engine and no base image, so `make image`, `make release` and
// internal/nodetest build the same image offline.
package agentimage
