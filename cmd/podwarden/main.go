// Command podwarden shows and fixes who the Linux OOM killer takes down on a
// Kubernetes node. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], stdStreams())
	stop()
	os.Exit(code)
}
