package agentimage

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

// Arches are the linux platforms the release image and binaries are built
// for; the image index holds one image per entry, so a node's runtime picks
// its own and the chart needs no architecture selector.
var Arches = []string{"amd64", "arm64"}

// BuildBinary builds the static, stripped linux/amd64 podwarden-agent (the
// node test's guest is amd64) from the module at repo into out.
func BuildBinary(ctx context.Context, repo, version, out string) error {
	return BuildStatic(ctx, repo, "./cmd/podwarden-agent", version, "amd64", out)
}

// BuildStatic builds the Go main package pkg of the module at repo for
// linux/goarch into out, the way every released binary is built:
// CGO_ENABLED=0 because the image has no libc and a release tarball must
// run on any distribution; -trimpath and an empty build ID so the bytes
// depend on the source, the version and the toolchain only, never on where
// the tree is or when it was built; the version stamped as the Makefile's
// LDFLAGS does.
func BuildStatic(ctx context.Context, repo, pkg, version, goarch, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath",
		"-ldflags", "-s -w -buildid= -X podwarden/internal/cli.version="+version,
		"-o", out, pkg)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s for linux/%s: %w: %s", pkg, goarch, err, strings.TrimSpace(string(b)))
	}
	return nil
}

func parseTag(ref string) (name.Tag, error) {
	t, err := name.NewTag(ref)
	if err != nil {
		return name.Tag{}, fmt.Errorf("image name %q: %w", ref, err)
	}
	return t, nil
}

// SourceDate is the reproducible-builds.org SOURCE_DATE_EPOCH value s (Unix
// seconds) as a time, the Unix epoch when s is empty: never the wall clock,
// so two builds of one tree match.
func SourceDate(s string) (time.Time, error) {
	if s == "" {
		return time.Unix(0, 0), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
	}
	return time.Unix(n, 0), nil
}
