package main

import (
	"log/slog"
	"os"

	"github.com/containerd/nri/pkg/api"
	"github.com/spf13/cobra"

	"podwarden/internal/cgroup"
	"podwarden/internal/cli"
	"podwarden/internal/nri"
)

type nriFlags struct {
	policy     policyFlags
	socket     string
	pluginName string
	pluginIdx  string
	cgroupRoot string
	log        cli.LogFlags
}

func newNRICmd(s streams) *cobra.Command {
	f := &nriFlags{}
	cmd := &cobra.Command{
		Use:   "nri",
		Short: "Protect target containers while the runtime creates them (NRI plugin)",
		Long: `Run as an NRI plugin of containerd (>= 1.7) or CRI-O. For every container the
policy selects, the plugin adds memory.oom.group (0 for single, 1 for group)
and the policy's oom_score_adj to the container's spec before the runtime
creates it, so no process of it ever runs unprotected. In-place resizes that
would set memory.oom.group=1 again are corrected on the way, and when the
plugin connects it corrects memory.oom.group of containers that already run.

Keep "podwarden agent" running beside it: NRI cannot change the
oom_score_adj of containers that were running before the plugin connected,
nor see what systemd or kubectl exec do later. Errors never fail a
container: if the plugin misbehaves or is gone, the runtime creates the
container without it and the agent repairs it. NRI must be enabled in the
runtime; see docs/nri.md.`,
		Example: `  podwarden nri --config /etc/podwarden/policy.yaml
  podwarden nri --socket /var/run/nri/nri.sock --plugin-idx 10 --oom-score-adj 900`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runNRI(cmd, s, f) },
	}
	fl := cmd.Flags()
	f.policy.register(fl, "oom_score_adj for target containers")
	fl.StringVar(&f.socket, "socket", api.DefaultSocketPath, "the runtime's NRI socket")
	fl.StringVar(&f.pluginName, "plugin-name", "podwarden", "name the plugin registers under")
	fl.StringVar(&f.pluginIdx, "plugin-idx", "10", "two-digit index ordering the plugin among other NRI plugins (lower runs first)")
	fl.StringVar(&f.cgroupRoot, "cgroup-root", "/sys/fs/cgroup", "host cgroup mount, read once to tell cgroup v2 (memory.oom.group allowed) from v1")
	f.log.Register(fl)
	return cmd
}

// connection maps the flags to where the plugin registers. A runtime that
// launches the plugin itself (from /opt/nri/plugins) passes the index and
// an already open connection in the environment; the flags then give way.
func (f *nriFlags) connection(cmd *cobra.Command) nri.Connection {
	c := nri.Connection{SocketPath: f.socket, Name: f.pluginName, Index: f.pluginIdx}
	if os.Getenv(api.PluginIdxEnvVar) != "" && !cmd.Flags().Changed("plugin-idx") {
		c.Index = ""
	}
	if os.Getenv(api.PluginSocketEnvVar) != "" {
		c.Once = true
	}
	return c
}

// cgroupV2 reports whether the host runs the unified hierarchy. Anything
// else, including a root it cannot read, counts as "no": setting
// memory.oom.group on a v1 host would make runc refuse every target
// container, while leaving it out only costs what the agent repairs.
func cgroupV2(root string, log *slog.Logger) bool {
	fs, err := cgroup.NewFS(root)
	if err != nil {
		log.Warn("nri: cannot tell the cgroup version; memory.oom.group will not be set, only oom_score_adj",
			"cgroup_root", root, "err", err)
		return false
	}
	if fs.Version() != cgroup.V2 {
		log.Info("nri: cgroup v2 is not the only hierarchy; memory.oom.group will not be set, only oom_score_adj",
			"cgroup_root", root, "version", fs.Version().String())
		return false
	}
	return true
}

func runNRI(cmd *cobra.Command, s streams, f *nriFlags) error {
	ctx := cmd.Context()
	pol, err := f.policy.load(cmd.Flags()) // nri.New validates the result
	if err != nil {
		return err
	}
	log, err := f.log.New(s.ErrOut)
	if err != nil {
		return err
	}
	p, err := nri.New(nri.Config{Policy: pol, CgroupV2: cgroupV2(f.cgroupRoot, log), Log: log})
	if err != nil {
		return err
	}
	err = p.Run(ctx, f.connection(cmd))
	st := p.Stats()
	log.Info("nri: stopped", "connections", st.Syncs, "containers_created", st.Created,
		"protected_at_creation", st.ProtectedAtCreation, "resizes_held", st.Updated,
		"fixed_at_connect", st.SyncFixed, "adj_left_to_agent", st.SyncAdjLeft, "failures", st.Failures)
	return err
}
