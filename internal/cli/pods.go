package cli

import (
	"context"
	"os"

	"github.com/spf13/pflag"

	"podwarden/internal/podname"
	"podwarden/internal/termsafe"
)

// podSource is how a binary's node commands name pods: the runtime Lister
// it was built with (podwarden-agent's), then the kubelet's log directories.
type podSource struct {
	runtime podname.Lister
}

// podFlags are the flags of a command that names pods.
type podFlags struct {
	src    *podSource
	logDir string
}

func (p *podSource) register(fs *pflag.FlagSet) *podFlags {
	f := &podFlags{src: p}
	fs.StringVar(&f.logDir, "pod-log-dir", podname.DefaultLogDir,
		`the kubelet's pod log directories (<namespace>_<name>_<uid>), read to name pods ("" to show UIDs)`)
	return f
}

// resolver names pods for one command run. Nothing is read until a name is
// asked for.
func (f *podFlags) resolver() *podname.Resolver {
	if f == nil {
		return podname.NewResolver()
	}
	var logs podname.Lister
	if f.logDir != "" {
		logs = podname.NewLogDir(f.logDir)
	}
	if f.src == nil {
		return podname.NewResolver(logs)
	}
	return podname.NewResolver(f.src.runtime, logs)
}

// namer returns a function that names a pod UID for output.
func namer(ctx context.Context, r *podname.Resolver) func(uid string) string {
	return func(uid string) string { return r.Name(ctx, uid) }
}

// source says where pods were named from, for a filter that matched
// nothing: the directory tried, and what could not be read.
func (f *podFlags) source(r *podname.Resolver) string {
	var s string
	switch {
	case f == nil || f.logDir == "":
		s = "pods named by the runtime only, else shown as UIDs"
	default:
		s = "pods named from " + f.logDir
		if _, err := os.Stat(f.logDir); err != nil {
			s += ", which does not exist: pods show as UIDs"
		}
	}
	if r != nil {
		for _, err := range r.Errors() {
			s += "; " + err.Error()
		}
	}
	return termsafe.Escape(s)
}
