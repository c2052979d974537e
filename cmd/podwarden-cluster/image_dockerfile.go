package main

import (
	"github.com/spf13/cobra"

	"podwarden/internal/image/lineage"
)

func newImageDockerfileCmd(s streams, flags *imageFlags) *cobra.Command {
	increment := false
	cmd := &cobra.Command{
		Use:   "dockerfile FAMILY VERSION",
		Short: "Print the merged from-scratch Dockerfile of a version, for reference",
		Args:  cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			l, err := lineage.Load(flags.Lineage)
			if err != nil {
				return err
			}
			v, err := findVersion(l, args[0], args[1])
			if err != nil {
				return err
			}
			if increment {
				return lineage.IncrementDockerfile(s.Out, v)
			}
			return lineage.Dockerfile(s.Out, v)
		},
	}
	cmd.Flags().BoolVar(&increment, "increment", false, "print only the increment: FROM the parent version, then its instructions")
	return cmd
}
