package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"podwarden/internal/image"
)

func newImageStatusCmd(s streams, flags *imageFlags) *cobra.Command {
	noHeaders := false
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Table of every known base ref against every patch",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runImageStatus(cmd.Context(), s, flags, noHeaders)
		},
	}
	cmd.Flags().BoolVar(&noHeaders, "no-headers", false, "do not print the header line")
	return cmd
}

func runImageStatus(ctx context.Context, s streams, flags *imageFlags, noHeaders bool) error {
	r, err := startEach(ctx, flags)
	if err != nil {
		return err
	}
	defer r.cancel()
	patches, err := image.LineagePatches(r.lineage)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
	if !noHeaders {
		fmt.Fprint(tw, "BASE")
		for _, p := range patches {
			fmt.Fprintf(tw, "\t%s", p.ID)
		}
		fmt.Fprintln(tw, "\tPATCHED TAG")
	}
	refs := r.lineage.Refs()
	failed := 0
	for _, refStr := range refs {
		ref, err := r.parseRef(refStr)
		if err != nil {
			return err
		}
		ctx, cancel := r.forImage()
		st := r.patcher.Status(ctx, ref, patches)
		cancel()
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
		return fmt.Errorf("%d of %d bases could not be read", failed, len(refs))
	}
	return nil
}
