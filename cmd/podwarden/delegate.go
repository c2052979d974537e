package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"podwarden/internal/cli"
)

// The binaries the delegated commands live in.
const (
	agentBinary   = "podwarden-agent"   // agent, nri: what the DaemonSet runs
	clusterBinary = "podwarden-cluster" // image, status
)

// delegatedCommands run in the other binaries: linking their Kubernetes,
// CRI, NRI and registry clients here would make every `podwarden ps` pay
// for them at start (35 MiB of RSS and ~15 ms of package init, measured).
var delegatedCommands = map[string]struct{ binary, short string }{
	"agent":  {agentBinary, "Keep the OOM policy true on this node (runs " + agentBinary + ")"},
	"nri":    {agentBinary, "Run the NRI plugin (runs " + agentBinary + ")"},
	"image":  {clusterBinary, "Incremental base images and backports (runs " + clusterBinary + ")"},
	"status": {clusterBinary, "Show every node's agent through the API server (runs " + clusterBinary + ")"},
}

func delegated() []cli.CommandFunc {
	var out []cli.CommandFunc
	for name, d := range delegatedCommands {
		out = append(out, func(cli.Streams) *cobra.Command {
			return &cobra.Command{
				Use:   name,
				Short: d.short,
				// The other binary parses the flags; completion asks it too.
				DisableFlagParsing: true,
				RunE: func(_ *cobra.Command, args []string) error {
					return execBinary(d.binary, append([]string{name}, args...))
				},
				ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
					return complete(cmd.Context(), d.binary, append(append([]string{name}, args...), toComplete))
				},
			}
		})
	}
	return out
}

// execBinary replaces this process with binary (same pid, signals and
// streams: what a DaemonSet's command expects), found next to this binary
// or on PATH.
func execBinary(binary string, args []string) error {
	path, err := cli.FindCompanion(binary)
	if err != nil {
		return fmt.Errorf("podwarden %s needs %s next to podwarden or on PATH (make build makes all three): %w", args[0], binary, err)
	}
	if err := syscall.Exec(path, append([]string{binary}, args...), os.Environ()); err != nil {
		return fmt.Errorf("exec %s: %w", path, err)
	}
	return nil
}

// complete asks binary for completions of args through cobra's hidden
// __complete command (the protocol the shell scripts use: one candidate
// per line, then ":<directive>"), so `podwarden agent --<TAB>` offers
// podwarden-agent's flags. Any failure completes nothing.
func complete(ctx context.Context, binary string, args []string) ([]cobra.Completion, cobra.ShellCompDirective) {
	fail := cobra.ShellCompDirectiveNoFileComp
	path, err := cli.FindCompanion(binary)
	if err != nil {
		return nil, fail
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var out bytes.Buffer
	c := exec.CommandContext(ctx, path, append([]string{cobra.ShellCompRequestCmd}, args...)...)
	c.Stdout = &out
	if c.Run() != nil {
		return nil, fail
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, ":") {
		return nil, fail
	}
	directive, err := strconv.Atoi(last[1:])
	if err != nil {
		return nil, fail
	}
	return lines[:len(lines)-1], cobra.ShellCompDirective(directive)
}
