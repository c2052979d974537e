package cli

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at link time: -ldflags "-X podwarden/internal/cli.version=v1.2.3".
var version = "dev"

// Version is podwarden's version, e.g. for a User-Agent.
func Version() string { return version }

func newVersionCmd(s Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the podwarden version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rev := ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, kv := range bi.Settings {
					if kv.Key == "vcs.revision" {
						rev = " " + kv.Value
					}
				}
			}
			_, err := fmt.Fprintf(s.Out, "podwarden %s%s\n", version, rev)
			return err
		},
	}
}
