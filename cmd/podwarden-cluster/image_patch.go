package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"podwarden/internal/image"
)

func newImagePatchCmd(s streams, flags *imageFlags) *cobra.Command {
	var ids []string
	cmd := &cobra.Command{
		Use:   "patch REF",
		Short: "Apply the patches REF lacks and push to a derived tag; print the ref to run",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImagePatch(cmd.Context(), s, flags, args[0], ids)
		},
	}
	cmd.Flags().StringSliceVar(&ids, "patches", nil, "patch ids to apply (default: every patch in the lineage file)")
	return cmd
}

func runImagePatch(ctx context.Context, s streams, flags *imageFlags, refStr string, ids []string) error {
	env, ctx, cancel, err := newImageEnv(ctx, flags)
	if err != nil {
		return err
	}
	defer cancel()
	ref, err := env.ref(refStr)
	if err != nil {
		return err
	}
	patches, err := image.LineagePatches(env.lineage, ids...)
	if err != nil {
		return err
	}
	start := time.Now()
	res, err := env.patcher.Patch(ctx, ref, patches)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.ErrOut, "%s: %s (%s, %d bytes moved)\n", ref, describe(res), time.Since(start).Round(time.Millisecond), env.counter.Total())
	_, err = fmt.Fprintln(s.Out, pinned(res.Ref, res.Digest.String()))
	return err
}
