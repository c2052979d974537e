package cli

import (
	"context"

	"github.com/spf13/pflag"

	"podwarden/internal/podname"
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
