package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/spf13/cobra"

	"podwarden/internal/agent"
	"podwarden/internal/cgroup"
	"podwarden/internal/cli"
	"podwarden/internal/cri"
	"podwarden/internal/kubeevent"
	"podwarden/internal/policy"
	"podwarden/internal/procfs"
)

type agentFlags struct {
	node        cli.NodeFlags
	policy      policyFlags
	once        bool
	dryRun      bool
	output      string
	noCRI       bool
	endpoint    string
	selector    string
	interval    time.Duration
	fast        time.Duration
	metricsAddr string
	webConfig   string
	kmsgPath    string
	kernelLog   string
	kubeEvents  bool
	nodeName    string
	logFormat   string
	logLevel    string
}

func newAgentCmd(s streams) *cobra.Command {
	f := &agentFlags{}
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Keep the OOM policy true on this node (the DaemonSet's command)",
		Long: `Find the target containers (through the container runtime, or with --no-cri by a
cgroup path glob), write memory.oom.group=0 into their cgroups, raise every one
of their processes to the policy's oom_score_adj, lower protected host daemons,
and repair drift. New processes and containers are protected as they appear
(netlink process connector, inotify on the cgroup tree, runtime events); a
periodic pass re-checks everything.

Start with "podwarden agent --once --dry-run": it prints every change it would
make and why, and writes nothing.`,
		Example: `  podwarden agent --once --dry-run
  podwarden agent --config /etc/podwarden/policy.yaml --metrics-addr :9808
  podwarden agent --no-cri --cgroup-selector '/kubepods*/**/pod*/*' --oom-score-adj 900`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runAgent(cmd, s, f) },
	}
	fl := cmd.Flags()
	f.node.Register(fl)
	f.policy.register(fl, "oom_score_adj for every process of target containers")
	fl.BoolVar(&f.once, "once", false, "make one pass and exit")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the changes a pass would make and write nothing (implies --once)")
	fl.StringVarP(&f.output, "output", "o", "table", "--once output: table or json")
	fl.BoolVar(&f.noCRI, "no-cri", false, "do not use a container runtime; choose targets with --cgroup-selector")
	fl.StringVar(&f.endpoint, "runtime-endpoint", "", "CRI socket (default: containerd, CRI-O, cri-dockerd in that order)")
	fl.StringVar(&f.selector, "cgroup-selector", "", "cgroup path glob of target containers (* one segment, ** any), used with --no-cri")
	fl.DurationVar(&f.interval, "interval", 0, fmt.Sprintf("full reconcile period (policy interval, %v..%v)", policy.MinInterval, policy.MaxInterval))
	fl.DurationVar(&f.fast, "fast-interval", 2*time.Second, fmt.Sprintf("cheap re-check period for flags, OOM counters and (without the process connector) new processes (%v..%v)", agent.MinFastInterval, agent.MaxFastInterval))
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "serve /metrics, /healthz and /readyz on this address (e.g. :9808)")
	fl.StringVar(&f.webConfig, "web-config-file", "", "TLS and basic auth for --metrics-addr: a Prometheus exporter-toolkit web config file, as node_exporter's --web.config.file (docs/agent.md)")
	fl.StringVar(&f.kmsgPath, "kmsg-path", "/dev/kmsg", `kernel log device read for OOM reports ("" to use memory.events counters only)`)
	fl.StringVar(&f.kernelLog, "kernel-log", agent.SourceAuto, "where OOM kills are learnt from: auto (kmsg, then syslog, then memory.events), kmsg, syslog (the syslog(2) call, needs CAP_SYSLOG) or memory.events")
	fl.BoolVar(&f.kubeEvents, "kube-events", false, "post OOM kills as Kubernetes Events on the pod and node (in-cluster credentials)")
	fl.StringVar(&f.nodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name, the Events' source (default $NODE_NAME)")
	fl.StringVar(&f.logFormat, "log-format", "json", "log format: json or text")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

// loadPolicy reads the config file and applies the flags the user set.
func (f *agentFlags) loadPolicy(cmd *cobra.Command) (policy.Config, error) {
	fl := cmd.Flags()
	cfg, err := f.policy.load(fl)
	if err != nil {
		return cfg, err
	}
	if fl.Changed("interval") {
		if err := policy.CheckInterval(f.interval); err != nil {
			return cfg, fmt.Errorf("--interval %s: %w", f.interval, err)
		}
		cfg.Interval = f.interval
	}
	if fl.Changed("cgroup-selector") {
		cfg.CgroupSelector = f.selector
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("policy after flags: %w", err)
	}
	return cfg, nil
}

func runAgent(cmd *cobra.Command, s streams, f *agentFlags) error {
	ctx := cmd.Context()
	if f.output != "table" && f.output != "json" {
		return fmt.Errorf("--output %q: want table or json", f.output)
	}
	pol, err := f.loadPolicy(cmd)
	if err != nil {
		return err
	}
	if err := agent.CheckFastInterval(f.fast); err != nil {
		return fmt.Errorf("--fast-interval %s: %w", f.fast, err)
	}
	switch f.kernelLog {
	case agent.SourceAuto, agent.SourceKmsg, agent.SourceSyslog, agent.SourceMemoryEvents:
	default:
		return fmt.Errorf("--kernel-log %q: want auto, kmsg, syslog or memory.events", f.kernelLog)
	}
	if f.kmsgPath == "" && f.kernelLog == agent.SourceAuto {
		f.kernelLog = agent.SourceMemoryEvents
	}
	if f.webConfig != "" {
		if f.metricsAddr == "" {
			return errors.New("--web-config-file needs --metrics-addr")
		}
		if err := web.Validate(f.webConfig); err != nil {
			return fmt.Errorf("--web-config-file %s: %w", f.webConfig, err)
		}
	}
	ownNS := f.policy.namespace(cmd.Flags())
	log, err := cli.NewLogger(s.ErrOut, f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	pfs, err := procfs.NewFS(f.node.ProcRoot)
	if err != nil {
		return fmt.Errorf("--proc-root: %w", err)
	}
	cfs, err := cgroup.NewFS(f.node.CgroupRoot)
	if err != nil {
		return fmt.Errorf("--cgroup-root: %w", err)
	}
	var rt agent.Runtime
	if !f.noCRI {
		client, err := cri.Dial(ctx, f.endpoint)
		if err != nil {
			return fmt.Errorf("%w (use --no-cri with --cgroup-selector on hosts without a CRI runtime)", err)
		}
		defer client.Close()
		rt = client
	} else if pol.CgroupSelector == "" {
		return errors.New("--no-cri needs --cgroup-selector (or cgroupSelector in the policy file)")
	}
	var reporter agent.Reporter
	if f.kubeEvents && !f.once && !f.dryRun {
		if f.nodeName == "" {
			return errors.New("--kube-events needs --node-name (or $NODE_NAME from the downward API)")
		}
		cfg, err := kubeevent.InCluster(kubeevent.ServiceAccountDir, os.Getenv)
		if err != nil {
			return fmt.Errorf("--kube-events: %w", err)
		}
		cfg.UserAgent = "podwarden-agent/" + cli.Version()
		r, err := kubeevent.NewReporter(ctx, cfg, f.nodeName, log)
		if err != nil {
			return fmt.Errorf("--kube-events: %w", err)
		}
		defer r.Close()
		reporter = r
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a, err := agent.New(agent.Config{
		Policy: pol, Proc: pfs, Cgroups: cfs, Runtime: rt, DryRun: f.dryRun, Log: log,
		Metrics: agent.NewMetrics(reg), FastInterval: f.fast, Reporter: reporter,
		KmsgPath: f.kmsgPath, KernelLog: f.kernelLog, OwnNamespace: ownNS,
	})
	if err != nil {
		return err
	}
	if f.once || f.dryRun {
		changes, err := a.Reconcile(ctx)
		if err != nil {
			return err
		}
		return writeChanges(s.Out, a.Targets(), changes, f.dryRun, f.output)
	}
	if f.metricsAddr != "" {
		srv, _, err := serveMetrics(ctx, f.metricsAddr, f.webConfig, reg, a, log)
		if err != nil {
			return err
		}
		defer srv.Close()
	}
	return a.Run(ctx)
}

// serveMetrics serves /metrics, /healthz and /readyz on addr, with the TLS
// and basic auth of exporter-toolkit web config file webConfig ("" for
// plain HTTP), as node_exporter does.
// It returns the server and the address it listens on.
func serveMetrics(ctx context.Context, addr, webConfig string, reg *prometheus.Registry, a *agent.Agent, log *slog.Logger) (*http.Server, net.Addr, error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", a.ServeHealth)
	mux.HandleFunc("/readyz", a.ServeReady)
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	flags := &web.FlagConfig{WebListenAddresses: &[]string{addr}, WebConfigFile: &webConfig}
	go func() {
		if err := web.Serve(ln, srv, flags, log); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	return srv, ln.Addr(), nil
}

func writeChanges(w io.Writer, targets []agent.Target, changes []agent.Change, dryRun bool, output string) error {
	if output == "json" {
		type row struct {
			agent.Change
			Error string `json:"error,omitempty"`
		}
		rows := make([]row, 0, len(changes))
		for _, c := range changes {
			r := row{Change: c}
			if c.Err != nil {
				r.Error = c.Err.Error()
			}
			rows = append(rows, r)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			DryRun  bool           `json:"dry_run"`
			Targets []agent.Target `json:"targets"`
			Changes []row          `json:"changes"`
		}{dryRun, targets, rows})
	}
	fmt.Fprintf(w, "%d target containers\n", len(targets))
	if len(changes) == 0 {
		_, err := fmt.Fprintln(w, "nothing to change: the policy holds")
		return err
	}
	verb := "CHANGED"
	if dryRun {
		verb = "WOULD CHANGE"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\tTARGET\tFROM\tTO\tPOD\tCONTAINER\tWHY\n", verb)
	failed := 0
	for _, c := range changes {
		why := c.Reason
		if c.Drift {
			why += " (drift)"
		}
		if c.Err != nil {
			why += ": FAILED: " + c.Err.Error()
			failed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", c.Kind, c.What(), c.From, c.To, dash(c.Pod), dash(c.Container), why)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d changes failed", failed, len(changes))
	}
	return nil
}
