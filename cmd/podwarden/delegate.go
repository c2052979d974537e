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

// fullBinary is the binary with every command.
const fullBinary = "podwarden-full"

// delegatedCommands run in podwarden-full: linking their Kubernetes, CRI,
// NRI and registry clients here would make every `podwarden ps` pay for
// them at start (35 MiB of RSS and ~15 ms of package init, measured).
var delegatedCommands = map[string]string{
	"agent":  "Keep the OOM policy true on this node (runs podwarden-full)",
	"nri":    "Run the NRI plugin (runs podwarden-full)",
	"image":  "Incremental base images and backports (runs podwarden-full)",
	"status": "Show every node's agent through the API server (runs podwarden-full)",
}

func delegated() []cli.CommandFunc {
	var out []cli.CommandFunc
	for name, short := range delegatedCommands {
		out = append(out, func(cli.Streams) *cobra.Command {
			return &cobra.Command{
				Use:                name,
				Short:              short,
				DisableFlagParsing: true,
				RunE: func(_ *cobra.Command, args []string) error {
					return execFull(append([]string{name}, args...))
				},
			}
		})
	}
	return out
}

// execFull replaces this process with podwarden-full (same pid, signals
// and streams: what a DaemonSet's command expects), found next to this
// binary or on PATH.
func execFull(args []string) error {
	path := ""
	if self, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(self), fullBinary); isExecutable(p) {
			path = p
		}
	}
	if path == "" {
		p, err := exec.LookPath(fullBinary)
		if err != nil {
			return fmt.Errorf("podwarden %s needs %s next to podwarden or on PATH (make build makes both): %w", args[0], fullBinary, err)
		}
		path = p
	}
	if err := syscall.Exec(path, append([]string{fullBinary}, args...), os.Environ()); err != nil {
		return fmt.Errorf("exec %s: %w", path, err)
	}
	return nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}
