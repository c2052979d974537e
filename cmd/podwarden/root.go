package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// streams lets tests run commands into buffers instead of the terminal.
type streams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

func stdStreams() streams { return streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr} }

// run executes the command line and returns the process exit code.
func run(ctx context.Context, args []string, s streams) int {
	root := newRootCmd(s)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(s.ErrOut, "podwarden: %v\n", err)
		return 1
	}
	return 0
}

func newRootCmd(s streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "podwarden",
		Short: "See and fix who the OOM killer takes down on a Kubernetes node",
		Long: `podwarden answers "if memory runs out now, who dies?" on a Kubernetes node,
turns kernel OOM reports into pod-attributed events, and keeps interactive
pods from taking the node down with them (memory.oom.group=0, raised
oom_score_adj) with a node agent.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(s.Out)
	root.SetErr(s.ErrOut)
	root.SetIn(s.In)
	root.AddCommand(newPsCmd(s), newVictimsCmd(s), newEventsCmd(s), newAgentCmd(s), newNRICmd(s), newImageCmd(s), newStatusCmd(s), newVersionCmd(s))
	return root
}
