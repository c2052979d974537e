// Package buildkit turns pod base image increments and RUN patches into
// BuildKit LLB and solves them on a buildkitd. Its command, podwarden-build,
// is the helper `podwarden image build` and RUN patches run: a JSON request
// on stdin, the pushed digest on stdout.
//
// It is a separate Go module so that the BuildKit client and its ~40 extra
// modules (containerd, otel, in-toto, ...) stay out of podwarden's go.mod
// and binaries. Builds push by digest first; the tag is then created only
// if it is absent or already names the identical digest, so a tag is never
// overwritten.
package buildkit
