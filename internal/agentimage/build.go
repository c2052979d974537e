package agentimage

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// BuildBinary builds the static, stripped podwarden-agent the image carries
// from the module at repo into out. CGO_ENABLED=0 because the image has no
// libc; -trimpath so the binary does not depend on where the tree is.
func BuildBinary(ctx context.Context, repo, version, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath",
		"-ldflags", "-s -w -X podwarden/internal/cli.version="+version,
		"-o", out, "./cmd/podwarden-agent")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/podwarden-agent: %w: %s", err, strings.TrimSpace(string(b)))
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
