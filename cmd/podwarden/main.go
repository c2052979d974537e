// Command podwarden shows who the Linux OOM killer takes down on a
// Kubernetes node (ps, victims, events). It stays small on purpose: it is
// run on nodes that are already short of memory. The cluster commands
// (agent, nri, image, status) live in podwarden-full, which this binary
// runs for them. See README.md.
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
	code := cli.Run(ctx, os.Args[1:], cli.StdStreams(), delegated()...)
	stop()
	os.Exit(code)
}
