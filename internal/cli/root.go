package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"podwarden/internal/podname"
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

// Binary is one of podwarden's binaries: the node commands every binary
// has, plus its own.
type Binary struct {
	// Name is the binary's name, for --version and completion scripts
	// (default "podwarden").
	Name string
	// Commands are the binary's own commands.
	Commands []CommandFunc
	// Pods, if set, names pods before the kubelet's log directories do:
	// podwarden-agent asks the container runtime. The podwarden binary
	// leaves it nil: it never makes a network call for a name.
	Pods podname.Lister
	// Companions are the other binaries `version` reports on, found next
	// to this one or on PATH (FindCompanion).
	Companions []string
}

// Main runs the binary's command line until SIGINT or SIGTERM, and exits
// with its code.
func (b Binary) Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := b.Run(ctx, os.Args[1:], StdStreams())
	stop()
	os.Exit(code)
}

// Run executes the command line and returns the process exit code: 0, the
// code of an ExitError, or 1 for any other error.
func (b Binary) Run(ctx context.Context, args []string, s Streams) int {
	root := b.Root(s)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintf(s.ErrOut, "%s: %v\n", b.name(), ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintf(s.ErrOut, "%s: %v\n", b.name(), err)
	return 1
}

// Run executes a command line of the podwarden binary with extra commands;
// tests use it.
func Run(ctx context.Context, args []string, s Streams, extra ...CommandFunc) int {
	return Binary{Commands: extra}.Run(ctx, args, s)
}

func (b Binary) name() string {
	if b.Name == "" {
		return "podwarden"
	}
	return b.Name
}

// ExitError makes a command exit with Code. Err, if set, is printed; a nil
// Err exits silently (the command has already said what it found).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit code %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Root returns the root command with ps, victims, events and version, and
// the binary's own commands.
func (b Binary) Root(s Streams) *cobra.Command {
	root := &cobra.Command{
		Use:   b.name(),
		Short: "See and fix who the OOM killer takes down on a Kubernetes node",
		Long: `podwarden answers "if memory runs out now, who dies?" on a Kubernetes node,
turns kernel OOM reports into pod-attributed events, and keeps interactive
pods from taking the node down with them (memory.oom.group=0, raised
oom_score_adj) with a node agent.`,
		// cobra's own --version output ("NAME version V"): a custom
		// template would link text/template, whose reflection keeps every
		// exported method alive (+2.2 MB on the podwarden binary, measured).
		Version:       Version(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(s.Out)
	root.SetErr(s.ErrOut)
	root.SetIn(s.In)
	pods := &podSource{runtime: b.Pods}
	root.AddCommand(newPsCmd(s, pods), newVictimsCmd(s, pods), newEventsCmd(s, pods), newVersionCmd(s, b))
	for _, f := range b.Commands {
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
