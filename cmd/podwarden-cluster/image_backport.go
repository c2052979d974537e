package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"podwarden/internal/image"
)

func newImageBackportCmd(s streams, flags *imageFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "backport PATCH",
		Short: "Patch every known base ahead of time with PATCH and the patches before it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImageBackport(cmd.Context(), s, flags, args[0])
		},
	}
}

// runImageBackport patches every known base with PATCH and every patch
// listed before it, the same set resolve applies once PATCH is the newest.
func runImageBackport(ctx context.Context, s streams, flags *imageFlags, id string) error {
	r, err := startEach(ctx, flags)
	if err != nil {
		return err
	}
	defer r.cancel()
	patches, err := image.PatchesThrough(r.lineage, id)
	if err != nil {
		return err
	}
	refs := r.lineage.Refs()
	failed := 0
	for i, refStr := range refs {
		r.counter.Reset()
		start := time.Now()
		msg := ""
		ref, err := r.parseRef(refStr)
		var res *image.Result
		if err == nil {
			ctx, cancel := r.forImage()
			res, err = r.patcher.Patch(ctx, ref, patches)
			cancel()
		}
		if err != nil {
			failed++
			msg = "FAILED: " + err.Error()
		} else {
			msg = describe(res)
		}
		fmt.Fprintf(s.ErrOut, "%s [%d/%d] %s: %s (%s, %d bytes)\n", bar(i+1, len(refs)), i+1, len(refs), refStr, msg,
			time.Since(start).Round(time.Millisecond), r.counter.Total())
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
