package main

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"podwarden/internal/image"
	"podwarden/internal/image/lineage"
	"podwarden/internal/image/overlay"
)

// imageFlags are shared by the image subcommands.
type imageFlags struct {
	Lineage    string
	Repository string
	Insecure   bool
	Patches    []string
	Timeout    time.Duration
	Increment  bool
	// BuildKit helper (image_build.go).
	BuildkitAddr string
	Builder      string
}

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
	pf.StringVarP(&flags.Lineage, "lineage", "l", "lineage.yaml", "lineage file")
	pf.StringVar(&flags.Repository, "repository", "", "push patched images to this repository (default: the base's)")
	pf.BoolVar(&flags.Insecure, "insecure", false, "allow plain-HTTP registries")
	pf.DurationVar(&flags.Timeout, "timeout", 0, "give up after this long (0: no limit; resolve defaults to 5s)")
	pf.StringVar(&flags.BuildkitAddr, "buildkit-addr", "unix:///run/buildkit/buildkitd.sock", "buildkitd address, for builds and RUN patches")
	pf.StringVar(&flags.Builder, "builder", "podwarden-build", "BuildKit helper binary; without it builds and RUN patches fail")

	cmd.AddCommand(
		&cobra.Command{
			Use:   "validate",
			Short: "Check the lineage file; errors name the line at fault",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				l, err := lineage.Load(flags.Lineage)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(s.Out, "%s: ok: %d families, %d versions, %d patches\n",
					flags.Lineage, len(l.Families), len(l.Refs()), len(l.Patches))
				return err
			},
		},
		newImageDockerfileCmd(s, flags),
		newImagePatchCmd(s, flags),
		newImageWebhookCmd(s, flags),
		&cobra.Command{
			Use:   "resolve REF",
			Short: "Print the ref a pod should run: REF with every patch, patching it if needed",
			Long: `Print the ref a pod should run. If REF lacks patches, patch it within
--timeout (default 5s). If that fails, print REF itself and say why on
stderr: a pod is never blocked by a patch.`,
			Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return runImageResolve(cmd.Context(), s, flags, args[0])
			},
		},
		&cobra.Command{
			Use:   "status",
			Short: "Table of every known base ref against every patch",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return runImageStatus(cmd.Context(), s, flags)
			},
		},
		&cobra.Command{
			Use:   "backport PATCH",
			Short: "Patch every known base ahead of time with PATCH and the patches before it",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return runImageBackport(cmd.Context(), s, flags, args[0])
			},
		},
		&cobra.Command{
			Use:   "check-backup REF UPPERDIR|TAR",
			Short: "List backup entries (files, whiteouts, opaque dirs) that would hide REF's patched files",
			Args:  cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				return runImageCheckBackup(cmd.Context(), s, flags, args[0], args[1])
			},
		},
		newImageBuildCmd(s, flags),
	)
	return cmd
}

func newImageDockerfileCmd(s streams, flags *imageFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dockerfile FAMILY VERSION",
		Short: "Print the merged from-scratch Dockerfile of a version, for reference",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := lineage.Load(flags.Lineage)
			if err != nil {
				return err
			}
			v, err := findVersion(l, args[0], args[1])
			if err != nil {
				return err
			}
			if flags.Increment {
				return lineage.IncrementDockerfile(s.Out, v)
			}
			return lineage.Dockerfile(s.Out, v)
		},
	}
	cmd.Flags().BoolVar(&flags.Increment, "increment", false, "print only the increment: FROM the parent version, then its instructions")
	return cmd
}

func newImagePatchCmd(s streams, flags *imageFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "patch REF",
		Short: "Apply the patches REF lacks and push to a derived tag; print the ref to run",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImagePatch(cmd.Context(), s, flags, args[0])
		},
	}
	cmd.Flags().StringSliceVar(&flags.Patches, "patches", nil, "patch ids to apply (default: every patch in the lineage file)")
	return cmd
}

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

// imageEnv is what the registry commands share.
type imageEnv struct {
	lineage *lineage.Lineage
	patcher *image.Patcher
	counter *image.Counter
	opts    []name.Option
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
	if flags.Repository != "" {
		opts = append(opts, image.WithRepository(flags.Repository))
	}
	if bin, err := exec.LookPath(flags.Builder); err == nil {
		opts = append(opts, image.WithRunner(&helperRunner{bin: bin, addr: flags.BuildkitAddr, insecure: flags.Insecure}))
	}
	if env.patcher, err = image.NewPatcher(opts...); err != nil {
		return nil, err
	}
	return env, nil
}

func (e *imageEnv) ref(s string) (name.Reference, error) {
	r, err := name.ParseReference(s, e.opts...)
	if err != nil {
		return nil, fmt.Errorf("parsing image reference: %w", err)
	}
	return r, nil
}

// patches converts the lineage patches with ids (all if ids is empty).
func (e *imageEnv) patches(ids []string) ([]image.Patch, error) {
	var src []*lineage.Patch
	if len(ids) == 0 {
		src = e.lineage.Patches
	}
	for _, id := range ids {
		p := e.lineage.Patch(id)
		if p == nil {
			return nil, fmt.Errorf("no patch %q in the lineage file", id)
		}
		src = append(src, p)
	}
	out := make([]image.Patch, 0, len(src))
	for _, p := range src {
		ip := image.Patch{ID: p.ID, Description: p.Description, Run: p.Run}
		for _, f := range p.Files {
			ip.Files = append(ip.Files, image.File{Path: f.Path, Mode: f.Mode, UID: f.UID, GID: f.GID, Content: f.Content})
		}
		out = append(out, ip)
	}
	return out, nil
}

func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if ctx == nil {
		ctx = context.Background()
	}
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

func runImagePatch(ctx context.Context, s streams, flags *imageFlags, refStr string) error {
	env, err := newImageEnv(flags)
	if err != nil {
		return err
	}
	ref, err := env.ref(refStr)
	if err != nil {
		return err
	}
	patches, err := env.patches(flags.Patches)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx, flags.Timeout)
	defer cancel()
	start := time.Now()
	res, err := env.patcher.Patch(ctx, ref, patches)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.ErrOut, "%s: %s (%s, %d bytes moved)\n", ref, describe(res), time.Since(start).Round(time.Millisecond), env.counter.Total())
	_, err = fmt.Fprintln(s.Out, pinned(res.Ref, res.Digest.String()))
	return err
}

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

func runImageResolve(ctx context.Context, s streams, flags *imageFlags, refStr string) error {
	env, err := newImageEnv(flags)
	if err != nil {
		return err
	}
	ref, err := env.ref(refStr)
	if err != nil {
		return err
	}
	patches, err := env.patches(nil)
	if err != nil {
		return err
	}
	timeout := flags.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	if ctx == nil {
		ctx = context.Background()
	}
	r := env.patcher.Resolve(ctx, ref, patches, timeout)
	out := refStr
	if r.Result != nil {
		out = pinned(r.Result.Ref, r.Result.Digest.String())
		fmt.Fprintf(s.ErrOut, "%s: %s\n", ref, describe(r.Result))
	}
	if r.Reason != nil {
		fmt.Fprintf(s.ErrOut, "podwarden: %s: %v\n", refStr, r.Reason)
	}
	_, err = fmt.Fprintln(s.Out, out)
	return err
}

func runImageStatus(ctx context.Context, s streams, flags *imageFlags) error {
	env, err := newImageEnv(flags)
	if err != nil {
		return err
	}
	patches, err := env.patches(nil)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx, flags.Timeout)
	defer cancel()
	tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "BASE")
	for _, p := range patches {
		fmt.Fprintf(tw, "\t%s", p.ID)
	}
	fmt.Fprintln(tw, "\tPATCHED TAG")
	failed := 0
	for _, refStr := range env.lineage.Refs() {
		ref, err := env.ref(refStr)
		if err != nil {
			return err
		}
		st := env.patcher.Status(ctx, ref, patches)
		fmt.Fprint(tw, refStr)
		for _, p := range patches {
			fmt.Fprintf(tw, "\t%s", st.States[p.ID])
		}
		tag := st.Tag
		if tag == "" {
			tag = "-"
		}
		fmt.Fprintf(tw, "\t%s\n", tag)
		if st.Err != nil {
			failed++
			fmt.Fprintf(s.ErrOut, "podwarden: %s: %v\n", refStr, st.Err)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d bases could not be read", failed, len(env.lineage.Refs()))
	}
	return nil
}

// runImageBackport patches every known base with PATCH and every patch
// listed before it, the same set resolve applies once PATCH is the newest.
func runImageBackport(ctx context.Context, s streams, flags *imageFlags, id string) error {
	env, err := newImageEnv(flags)
	if err != nil {
		return err
	}
	var ids []string
	for _, p := range env.lineage.Patches {
		ids = append(ids, p.ID)
		if p.ID == id {
			break
		}
	}
	if env.lineage.Patch(id) == nil {
		return fmt.Errorf("no patch %q in the lineage file", id)
	}
	patches, err := env.patches(ids)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx, flags.Timeout)
	defer cancel()
	refs := env.lineage.Refs()
	failed := 0
	for i, refStr := range refs {
		env.counter.Reset()
		start := time.Now()
		msg := ""
		ref, err := env.ref(refStr)
		var res *image.Result
		if err == nil {
			res, err = env.patcher.Patch(ctx, ref, patches)
		}
		if err != nil {
			failed++
			msg = "FAILED: " + err.Error()
		} else {
			msg = describe(res)
		}
		fmt.Fprintf(s.ErrOut, "%s [%d/%d] %s: %s (%s, %d bytes)\n", bar(i+1, len(refs)), i+1, len(refs), refStr, msg,
			time.Since(start).Round(time.Millisecond), env.counter.Total())
		if res != nil {
			fmt.Fprintf(s.Out, "%s\t%s\n", refStr, pinned(res.Ref, res.Digest.String()))
		}
	}
	if failed > 0 {
		return fmt.Errorf("backport %s: %d of %d bases failed", id, failed, len(refs))
	}
	return nil
}

func bar(done, total int) string {
	const width = 20
	n := done * width / max(total, 1)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

func runImageCheckBackup(ctx context.Context, s streams, flags *imageFlags, refStr, upper string) error {
	env, err := newImageEnv(flags)
	if err != nil {
		return err
	}
	ref, err := env.ref(refStr)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx, flags.Timeout)
	defer cancel()
	info, err := env.patcher.Inspect(ctx, ref)
	if err != nil {
		return err
	}
	patches, err := env.patches(info.Patches)
	if err != nil {
		return fmt.Errorf("%s has patches the lineage file does not know: %w", refStr, err)
	}
	owner := map[string]string{}
	var files []string
	for _, p := range patches {
		for _, f := range p.Files {
			if _, ok := owner[f.Path]; !ok {
				files = append(files, f.Path)
			}
			owner[f.Path] = p.ID
		}
	}
	entries, err := overlay.Open(upper)
	if err != nil {
		return err
	}
	found := overlay.Hidden(entries, files)
	return printFindings(s.Out, s.ErrOut, refStr, info.Patches, found)
}

func printFindings(out, errOut io.Writer, ref string, ids []string, found []overlay.Finding) error {
	if len(found) == 0 {
		_, err := fmt.Fprintf(errOut, "%s: nothing in the backup hides the files of %s\n", ref, list(ids))
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PATCHED FILE\tBACKUP ENTRY\tTYPE\tWHY")
	for _, f := range found {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.File, f.Entry.Raw, f.Entry.Type, f.Why)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return fmt.Errorf("%d backup entries would hide patched files", len(found))
}
