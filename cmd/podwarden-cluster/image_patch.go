package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
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
	r, patches, err := startPatching(ctx, flags, refStr, ids...)
	if err != nil {
		return err
	}
	defer r.cancel()
	start := time.Now()
	res, err := r.patcher.Patch(r.ctx, r.ref, patches)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && flags.Timeout > 0 {
			return fmt.Errorf("%w (--timeout %s)", err, flags.Timeout)
		}
		return err
	}
	fmt.Fprintf(s.ErrOut, "%s: %s (%s, %d bytes moved)\n", r.ref, describe(res), time.Since(start).Round(time.Millisecond), r.counter.Total())
	_, err = fmt.Fprintln(s.Out, pinned(res.Ref, res.Digest.String()))
	return err
}
