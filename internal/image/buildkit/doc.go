// Package buildkit turns pod base image increments and RUN patches into
// BuildKit LLB and solves them on a buildkitd.
//
// It is a separate Go module so that the BuildKit client and its many
// dependencies stay out of the podwarden binary and its go.mod until image
// builds are wired into `podwarden image build`. Builds push by digest
// first; the tag is then created only if it is absent or already names the
// identical digest, so a tag is never overwritten.
package buildkit
