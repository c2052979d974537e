package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"podwarden/internal/image/lineage"
)

func newImageValidateCmd(s streams, flags *imageFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "validate",
		Short: "Check the lineage file; errors name the line at fault",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			l, err := lineage.Load(flags.Lineage)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(s.Out, "%s: ok: %d families, %d versions, %d patches\n",
				flags.Lineage, len(l.Families), len(l.Refs()), len(l.Patches))
			return err
		},
	}
}
