// Command podwarden-cluster is podwarden's cluster-side tools: image
// (incremental base images, backports, the admission webhook) and status
// (every node's agent through the API server), plus the node diagnostics.
// They link client-go and go-containerregistry, which the node binaries
// stay without (docs/architecture_test.go checks it); BuildKit's client is
// linked only by podwarden-build, its own module. `podwarden image` and
// `podwarden status` run it.
package main

import "podwarden/internal/cli"

func main() { cli.Binary{Name: "podwarden-cluster", Commands: commands}.Main() }

var commands = []cli.CommandFunc{newImageCmd, newStatusCmd}

// streams keeps the command files in the shape they share with
// internal/cli.
type streams = cli.Streams
