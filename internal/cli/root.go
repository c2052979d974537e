package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"podwarden/internal/podname"
	"podwarden/internal/termsafe"
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
	// Errors quote flags, paths and names a pod may have chosen.
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintf(s.ErrOut, "%s: %s\n", b.name(), termsafe.Escape(ee.Err.Error()))
		}
		return ee.Code
	}
	fmt.Fprintf(s.ErrOut, "%s: %s\n", b.name(), termsafe.Escape(err.Error()))
	if exitCodeAsked(root, args) {
		return ExitUnknown
	}
	return 1
}

// ExitUnknown is the exit status of a command run with --exit-code that
// failed, a bad flag included: 2, "could not tell", never 1, which means
// "problem found" (node-problem-detector's convention).
const ExitUnknown = 2

// exitCodeAsked reports whether args run a command that has --exit-code
// and ask for it. The flags may not have parsed (a bad flag stops pflag
// where it is), so args are read as given.
func exitCodeAsked(root *cobra.Command, args []string) bool {
	cmd, _, err := root.Find(args)
	if err != nil || cmd.Flags().Lookup("exit-code") == nil {
		return false
	}
	asked := false // the last one wins, as in pflag
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "--exit-code" {
			asked = true
		}
		if v, ok := strings.CutPrefix(a, "--exit-code="); ok {
			b, err := strconv.ParseBool(v)
			asked = err != nil || b
		}
	}
	return asked
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
	// --version without cobra's -v: kubectl has no -v for a version, and
	// podwarden-agent's agent takes -v for --verbose, so -v means one thing.
	root.Flags().Bool("version", false, "print the version of "+b.name()+" and exit")
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

// Dash prints a table cell that may hold text a process, a pod or a log
// controls: escaped (termsafe.Escape), and "-" when empty.
func Dash(s string) string {
	if s == "" {
		return "-"
	}
	return termsafe.Escape(s)
}
