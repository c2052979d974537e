// Command podwarden-full is podwarden with every command: the node
// diagnostics of cmd/podwarden plus agent, nri, image and status, which
// link the Kubernetes, CRI, NRI and registry clients. The DaemonSet image
// ships it; `podwarden <cmd>` runs it for those commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"podwarden/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], cli.StdStreams(), commands...)
	stop()
	os.Exit(code)
}

var commands = []cli.CommandFunc{newAgentCmd, newNRICmd, newImageCmd, newStatusCmd}

// streams and the helpers below keep the command files in the shape they
// share with internal/cli.
type streams = cli.Streams

func dash(s string) string { return cli.Dash(s) }
