// Command podwarden-agent is what the DaemonSet runs: the node agent and
// the NRI plugin, plus the node diagnostics (ps, victims, events) for
// `kubectl exec`. It links the CRI, NRI and Prometheus clients but not
// client-go (its Events go through internal/kubeevent): every node pays
// for this binary's pages, and the agent's RSS goal is 25 MiB.
// `podwarden agent` and `podwarden nri` run it.
package main

import "podwarden/internal/cli"

func main() {
	cli.Binary{Name: "podwarden-agent", Commands: commands, Pods: runtimePods{}}.Main()
}

var commands = []cli.CommandFunc{newAgentCmd, newNRICmd}

// streams and the helpers below keep the command files in the shape they
// share with internal/cli.
type streams = cli.Streams

func dash(s string) string { return cli.Dash(s) }
