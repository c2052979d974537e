package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Streams lets tests run commands into buffers instead of the terminal.
type Streams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// StdStreams are the process's standard streams.
func StdStreams() Streams { return Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr} }

// CommandFunc builds a command that writes to s.
type CommandFunc func(s Streams) *cobra.Command

// Main runs a podwarden binary's command line with the node commands plus
// extra, until SIGINT or SIGTERM, and exits with its code.
func Main(extra ...CommandFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, os.Args[1:], StdStreams(), extra...)
	stop()
	os.Exit(code)
}

// Run executes the command line with the node commands plus extra, and
// returns the process exit code.
func Run(ctx context.Context, args []string, s Streams, extra ...CommandFunc) int {
	root := NewRoot(s, extra...)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(s.ErrOut, "podwarden: %v\n", err)
		return 1
	}
	return 0
}

// NewRoot returns the root command with ps, victims, events and version,
// and the extra commands.
func NewRoot(s Streams, extra ...CommandFunc) *cobra.Command {
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
	root.AddCommand(newPsCmd(s), newVictimsCmd(s), newEventsCmd(s), newVersionCmd(s))
	for _, f := range extra {
		root.AddCommand(f(s))
	}
	return root
}

// Dash prints "-" for an empty table cell.
func Dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// NewLogger builds the slog logger the long-running commands use.
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want json or text", format)
}
