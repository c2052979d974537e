// Package release writes podwarden's release (`make release`, hack/release):
// per-platform tarballs of the three static binaries, the agent image as a
// multi-platform OCI layout (internal/agentimage's recipe), the chart
// package pinned to that image by digest, an SPDX SBOM for each binary and
// for the image, and SHA256SUMS; and pushes the image index and the chart
// (as `helm push` would) to a registry. Every output is reproducible:
// entries sorted, times fixed to the source date, no build IDs or paths,
// so two runs from one commit give the same bytes. It is used by hack/
// only: the Helm pieces it imports stay out of the shipped binaries.
package release
