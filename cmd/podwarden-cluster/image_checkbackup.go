package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"podwarden/internal/image"
	"podwarden/internal/image/overlay"
)

func newImageCheckBackupCmd(s streams, flags *imageFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "check-backup REF UPPERDIR|TAR",
		Short: "List backup entries (files, whiteouts, opaque dirs) that would hide REF's patched files",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImageCheckBackup(cmd.Context(), s, flags, args[0], args[1])
		},
	}
}

func runImageCheckBackup(ctx context.Context, s streams, flags *imageFlags, refStr, upper string) error {
	r, err := startImage(ctx, flags, refStr)
	if err != nil {
		return err
	}
	defer r.cancel()
	info, err := r.patcher.Inspect(r.ctx, r.ref)
	if err != nil {
		return err
	}
	patches, err := image.LineagePatches(r.lineage, info.Patches...)
	if err != nil {
		return fmt.Errorf("%s has patches the lineage file does not know: %w", refStr, err)
	}
	var files []string
	seen := map[string]bool{}
	for _, p := range patches {
		for _, f := range p.Files {
			if !seen[f.Path] {
				seen[f.Path] = true
				files = append(files, f.Path)
			}
		}
	}
	entries, err := overlay.Open(upper)
	if err != nil {
		return err
	}
	return printFindings(s.Out, s.ErrOut, refStr, info.Patches, overlay.Hidden(entries, files))
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
