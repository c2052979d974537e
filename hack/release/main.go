// Command release writes podwarden's release into a directory (`make
// release VERSION=vX.Y.Z`, internal/release) and, with -push, pushes the
// image index and the chart to -registry with Docker's credentials
// (~/.docker/config.json, `docker login`). With -push and $COSIGN_KEY (a
// key from `cosign generate-key-pair`, its password in $COSIGN_PASSWORD)
// it signs both by digest as `cosign sign --key` does, without a
// transparency log entry (verify with `cosign verify --key cosign.pub
// --insecure-ignore-tlog`). With -push it writes <dist>/pushed.txt: a line
// per pushed reference by digest, followed by its signature image when it
// was signed here. Without COSIGN_KEY nothing is signed here: the release
// workflow signs exactly those references keyless, which needs the
// forge's OIDC token.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"podwarden/internal/agentimage"
	"podwarden/internal/release"
	"podwarden/internal/release/sign"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	version := flag.String("version", "", "release version, vMAJOR.MINOR.PATCH (the tag)")
	dist := flag.String("o", "dist", "directory to write (must not exist)")
	registry := flag.String("registry", "ghcr.io/podwarden", "registry and path the image (REGISTRY/podwarden) and chart (REGISTRY/charts/podwarden) are pushed to; the chart pulls the image from there")
	push := flag.Bool("push", false, "push the image index and the chart to -registry")
	insecure := flag.Bool("insecure", false, "plain HTTP to -registry (loopback and private addresses use it anyway)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	created, err := sourceDate(ctx)
	if err != nil {
		return err
	}
	o := release.Options{Version: *version, Registry: *registry, Created: created, Revision: gitOut(ctx, "rev-parse", "HEAD"), Repo: "."}
	if gitOut(ctx, "status", "--porcelain", "--untracked-files=no") != "" {
		log.Warn("the work tree has uncommitted changes: this release is not the commit's", "revision", o.Revision)
	}
	// The key is loaded first, so a wrong password fails the release
	// before minutes of building, and before anything is pushed unsigned;
	// without -push it is not read at all (a COSIGN_KEY left in the
	// environment must not break a local build).
	var signer *sign.Signer
	if *push {
		if signer, err = sign.FromEnv(os.LookupEnv); err != nil {
			return err
		}
	} else if os.Getenv("COSIGN_KEY") != "" {
		log.Warn("COSIGN_KEY is set but -push is not: only what is pushed is signed")
	}
	tmp, err := os.MkdirTemp("", "podwarden-release-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	bins, err := release.Build(ctx, o, tmp)
	if err != nil {
		return err
	}
	log.Info("built", "binaries", len(release.Commands)*len(bins), "took", time.Since(start).Round(time.Second))
	res, err := release.Package(ctx, o, bins, *dist)
	if err != nil {
		return err
	}
	for _, f := range res.Files {
		fmt.Println(filepath.Join(*dist, f))
	}
	fmt.Printf("image index %s@%s\n", res.Image, res.IndexDigest)
	if !*push {
		return nil
	}
	auth := remote.WithAuthFromKeychain(authn.DefaultKeychain)
	pushed, err := release.Push(ctx, o, res, *insecure, auth)
	if err != nil {
		return err
	}
	fmt.Printf("pushed %s\npushed %s\n", pushed.Image, pushed.Chart)
	// pushed.txt is written as soon as the push is done: a failed signing
	// still leaves the list of what is now in the registry.
	out := filepath.Join(*dist, "pushed.txt")
	if err := os.WriteFile(out, []byte(sign.PushedList(pushed, nil)), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	if signer == nil {
		log.Warn("nothing was signed: COSIGN_KEY is not set; sign the references in " + out + " with cosign (the release workflow signs them keyless)")
		return nil
	}
	sigs, err := signer.SignPushed(ctx, pushed, *insecure, auth)
	if err != nil {
		return err
	}
	for _, s := range sigs {
		fmt.Printf("signed %s: signature %s\n", s.Ref, s)
	}
	if err := os.WriteFile(out, []byte(sign.PushedList(pushed, sigs)), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return nil
}

// sourceDate is $SOURCE_DATE_EPOCH (reproducible-builds.org), else the
// commit's time, else the Unix epoch: never the wall clock, so two builds
// of one commit match.
func sourceDate(ctx context.Context) (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		s = gitOut(ctx, "log", "-1", "--format=%ct")
	}
	return agentimage.SourceDate(s)
}

// gitOut is git's trimmed output, "" outside a git tree or on error.
func gitOut(ctx context.Context, args ...string) string {
	b, err := exec.CommandContext(ctx, "git", args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
