package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

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
				Use:                name,
				Short:              d.short,
				DisableFlagParsing: true,
				RunE: func(_ *cobra.Command, args []string) error {
					return execBinary(d.binary, append([]string{name}, args...))
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
	path := ""
	if self, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(self), binary); isExecutable(p) {
			path = p
		}
	}
	if path == "" {
		p, err := exec.LookPath(binary)
		if err != nil {
			return fmt.Errorf("podwarden %s needs %s next to podwarden or on PATH (make build makes all three): %w", args[0], binary, err)
		}
		path = p
	}
	if err := syscall.Exec(path, append([]string{binary}, args...), os.Environ()); err != nil {
		return fmt.Errorf("exec %s: %w", path, err)
	}
	return nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}
