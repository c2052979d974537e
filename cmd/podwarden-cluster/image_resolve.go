package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newImageResolveCmd(s streams, flags *imageFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "resolve REF",
		Short: "Print the ref a pod should run: REF with every patch, patching it if needed",
		Long: `Print the ref a pod should run. If REF lacks patches, patch it within
--timeout (default 5s). If that fails, print REF itself and say why on
stderr: a pod is never blocked by a patch.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImageResolve(cmd.Context(), s, timeoutFlagDefault(cmd, flags, resolveTimeout), args[0])
		},
	}
}

// resolveTimeout is resolve's --timeout unless given: a pod waits on it.
const resolveTimeout = 5 * time.Second

func runImageResolve(ctx context.Context, s streams, flags *imageFlags, refStr string) error {
	r, patches, err := startPatching(ctx, flags, refStr)
	if err != nil {
		return err
	}
	defer r.cancel()
	timeout := flags.Timeout
	if timeout <= 0 {
		// A pod waits on this: never without a bound.
		timeout = resolveTimeout
	}
	res := r.patcher.Resolve(r.ctx, r.ref, patches, timeout)
	out := refStr
	if res.Result != nil {
		out = pinned(res.Result.Ref, res.Result.Digest.String())
		fmt.Fprintf(s.ErrOut, "%s: %s\n", r.ref, describe(res.Result))
	}
	if res.Reason != nil {
		fmt.Fprintf(s.ErrOut, "podwarden: %s: %v\n", refStr, res.Reason)
	}
	_, err = fmt.Fprintln(s.Out, out)
	return err
}
