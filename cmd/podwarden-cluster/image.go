package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"podwarden/internal/cli"
	"podwarden/internal/image"
	"podwarden/internal/image/lineage"
)

// imageFlags are shared by the image subcommands (persistent flags of
// `image`); a subcommand's own flags live in its file.
type imageFlags struct {
	Lineage    string
	Repository string
	Insecure   bool
	Timeout    time.Duration
	// Stall bounds one registry request that moves no byte.
	Stall time.Duration
	// BuildKit helper (image_build.go).
	BuildkitAddr string
	Builder      string
}

// newImageCmd is `image`; each subcommand is in its own image_*.go file.
func newImageCmd(s streams) *cobra.Command {
	flags := &imageFlags{}
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Incremental pod base images and their backport patches",
		Long: `Pod base images are never rebuilt from scratch and their tags are never
overwritten. Each version is its parent plus an increment (the lineage file),
and fixes every old base needs are backport patches: file patches are added
as one reproducible layer (RUN patches go through BuildKit) and pushed to a
new tag derived from the base's digest and the patch set, when a pod uses
the base (resolve, webhook) or ahead of time (backport). See docs/image.md.`,
		Args: cobra.NoArgs,
	}
	pf := cmd.PersistentFlags()
	pf.StringVarP(&flags.Lineage, "lineage", "f", "lineage.yaml", "lineage file (-f as in kubectl's --filename; -l is a label selector everywhere)")
	pf.StringVar(&flags.Repository, "repository", "", "push patched images to this repository (default: the base's)")
	pf.BoolVar(&flags.Insecure, "insecure", false, "allow plain-HTTP registries")
	pf.DurationVar(&flags.Timeout, "timeout", defaultTimeout, "give up on an image after this long (0: no limit); resolve defaults to 5s, build to no limit")
	pf.DurationVar(&flags.Stall, "stall-timeout", image.DefaultStallTimeout, "fail a registry request that sends or receives nothing for this long")
	pf.StringVar(&flags.BuildkitAddr, "buildkit-addr", "unix:///run/buildkit/buildkitd.sock", "buildkitd address, for builds and RUN patches")
	pf.StringVar(&flags.Builder, "builder", "podwarden-build", "BuildKit helper binary (a bare name is looked for next to this binary, then on $PATH); without it builds and RUN patches fail")

	cmd.AddCommand(
		newImageValidateCmd(s, flags),
		newImageDockerfileCmd(s, flags),
		newImagePatchCmd(s, flags),
		newImageWebhookCmd(s, flags),
		newImageResolveCmd(s, flags),
		newImageStatusCmd(s, flags),
		newImageBackportCmd(s, flags),
		newImageCheckBackupCmd(s, flags),
		newImageBuildCmd(s, flags),
	)
	return cmd
}

// defaultTimeout bounds a registry command's work on one image. The stall
// timeout catches a registry that hangs; this catches one that drips a
// byte at a time, and a RUN patch build that never ends.
const defaultTimeout = 10 * time.Minute

// timeoutFlagDefault returns flags with Timeout set to def when --timeout
// was not given: resolve and build have defaults of their own.
func timeoutFlagDefault(cmd *cobra.Command, flags *imageFlags, def time.Duration) *imageFlags {
	if cmd.Flags().Changed("timeout") {
		return flags
	}
	f := *flags
	f.Timeout = def
	return &f
}

// imageEnv is what the registry subcommands start from: the lineage file,
// a patcher configured by the flags, and a context bounded by --timeout.
type imageEnv struct {
	lineage *lineage.Lineage
	patcher *image.Patcher
	counter *image.Counter
	opts    []name.Option
}

// imageRun is one subcommand's run: the env, the context bounded by
// --timeout (release it with cancel), and the REF argument if it has one.
type imageRun struct {
	*imageEnv
	ctx    context.Context
	cancel context.CancelFunc
	ref    name.Reference
	// each is --timeout for commands that bound each image on its own
	// (status, backport): see forImage.
	each time.Duration
}

// forImage is the context for one image of a command over many images:
// --timeout applies to each, so a long list does not run out of time.
func (r *imageRun) forImage() (context.Context, context.CancelFunc) {
	if r.each > 0 {
		return context.WithTimeout(r.ctx, r.each)
	}
	return context.WithCancel(r.ctx)
}

// startEach is startImage for the commands over every known base: the
// command as a whole has no deadline, each base has --timeout.
func startEach(ctx context.Context, flags *imageFlags) (*imageRun, error) {
	f := *flags
	f.Timeout = 0
	r, err := startImage(ctx, &f, "")
	if err != nil {
		return nil, err
	}
	r.each = flags.Timeout
	return r, nil
}

// startImage is the prologue every registry subcommand shares; refStr is
// its REF argument, "" for none.
func startImage(ctx context.Context, flags *imageFlags, refStr string) (*imageRun, error) {
	env, err := newImageEnv(flags)
	if err != nil {
		return nil, err
	}
	var ref name.Reference
	if refStr != "" {
		if ref, err = env.parseRef(refStr); err != nil {
			return nil, err
		}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	r := &imageRun{imageEnv: env, ref: ref}
	if flags.Timeout > 0 {
		r.ctx, r.cancel = context.WithTimeout(ctx, flags.Timeout)
	} else {
		r.ctx, r.cancel = context.WithCancel(ctx)
	}
	return r, nil
}

// startPatching is startImage for the subcommands that apply patches: it
// also picks the lineage's patches named by ids (every one without ids).
func startPatching(ctx context.Context, flags *imageFlags, refStr string, ids ...string) (*imageRun, []image.Patch, error) {
	r, err := startImage(ctx, flags, refStr)
	if err != nil {
		return nil, nil, err
	}
	patches, err := image.LineagePatches(r.lineage, ids...)
	if err != nil {
		r.cancel()
		return nil, nil, err
	}
	return r, patches, nil
}

func newImageEnv(flags *imageFlags) (*imageEnv, error) {
	l, err := lineage.Load(flags.Lineage)
	if err != nil {
		return nil, err
	}
	env := &imageEnv{lineage: l, counter: &image.Counter{}}
	if flags.Insecure {
		env.opts = append(env.opts, name.Insecure)
	}
	opts := []image.Option{image.WithTransport(env.counter.Transport(nil))}
	if flags.Stall > 0 {
		opts = append(opts, image.WithStallTimeout(flags.Stall))
	}
	if flags.Repository != "" {
		opts = append(opts, image.WithRepository(flags.Repository))
	}
	if bin, err := builderPath(flags.Builder); err == nil {
		opts = append(opts, image.WithRunner(&helperRunner{bin: bin, addr: flags.BuildkitAddr, insecure: flags.Insecure}))
	}
	if env.patcher, err = image.NewPatcher(opts...); err != nil {
		return nil, err
	}
	return env, nil
}

func (e *imageEnv) parseRef(s string) (name.Reference, error) {
	r, err := name.ParseReference(s, e.opts...)
	if err != nil {
		return nil, fmt.Errorf("parsing image reference: %w", err)
	}
	return r, nil
}

// findVersion returns a version of the lineage file, or an error naming
// what is missing.
func findVersion(l *lineage.Lineage, family, version string) (*lineage.Version, error) {
	f := l.Family(family)
	if f == nil {
		return nil, fmt.Errorf("no family %q in the lineage file", family)
	}
	v := f.Version(version)
	if v == nil {
		return nil, fmt.Errorf("family %s has no version %q", family, version)
	}
	return v, nil
}

// describe says what a patch did, for stderr.
func describe(res *image.Result) string {
	switch {
	case res.NoOp():
		return "already has " + list(res.Had)
	case res.Pushed:
		return "applied " + list(res.Applied) + ", pushed " + res.Ref.String()
	default:
		return "applied " + list(res.Applied) + ", " + res.Ref.String() + " already existed with the same digest"
	}
}

func list(ids []string) string {
	if len(ids) == 0 {
		return "no patches"
	}
	return strings.Join(ids, ",")
}

// pinned returns ref@digest, the form a pod spec should use.
func pinned(ref name.Reference, digest string) string {
	if _, ok := ref.(name.Digest); ok {
		return ref.String()
	}
	return ref.String() + "@" + digest
}

// builderPath finds the BuildKit helper: a bare name next to this binary
// first, where make build and a release put it, then on $PATH; a path as
// given.
func builderPath(builder string) (string, error) {
	if !strings.ContainsRune(builder, filepath.Separator) {
		return cli.FindCompanion(builder)
	}
	return exec.LookPath(builder)
}
