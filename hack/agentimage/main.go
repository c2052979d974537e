// Command agentimage builds podwarden's release image offline (`make
// image`): internal/agentimage's recipe, written as a tarball for `docker
// load` / `ctr images import`, and pushed when -push names a reference.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"podwarden/internal/agentimage"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "agentimage:", err)
		os.Exit(1)
	}
}

func run() error {
	out := flag.String("o", "bin/podwarden-image.tar", "image tarball to write")
	tag := flag.String("t", "podwarden:dev", "name the tarball carries")
	version := flag.String("version", "dev", "version linked into the binary and labelled")
	arch := flag.String("arch", "amd64", "GOARCH of the image (a docker tarball holds one platform; `make release` builds the amd64+arm64 index)")
	push := flag.String("push", "", "also push to this reference (e.g. registry.example.com/podwarden:v0.1.0), with docker's credentials")
	flag.Parse()
	ctx := context.Background()
	created, err := agentimage.SourceDate(os.Getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	bin := filepath.Join(filepath.Dir(*out), "podwarden-agent-image-bin")
	if err := agentimage.BuildStatic(ctx, ".", "./cmd/podwarden-agent", *version, *arch, bin); err != nil {
		return err
	}
	defer os.Remove(bin)
	img, err := agentimage.Image(bin, agentimage.Meta{Version: *version, Revision: revision(ctx), Created: created, Arch: *arch})
	if err != nil {
		return err
	}
	if err := agentimage.WriteTarball(*out, *tag, img); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s: %s %s\n", *out, *tag, d)
	if *push != "" {
		ref, err := name.ParseReference(*push)
		if err != nil {
			return fmt.Errorf("-push %q: %w", *push, err)
		}
		if err := remote.Write(ref, img, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return fmt.Errorf("pushing %s: %w", ref, err)
		}
		fmt.Printf("pushed %s@%s\n", ref.Context(), d)
	}
	return nil
}

// revision is the git commit, "" outside a git tree.
func revision(ctx context.Context) string {
	b, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
