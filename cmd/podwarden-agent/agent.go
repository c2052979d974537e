package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
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
	"podwarden/internal/metricsserver"
	"podwarden/internal/podname"
	"podwarden/internal/policy"
	"podwarden/internal/preempt"
	"podwarden/internal/procfs"
)

type agentFlags struct {
	node        cli.NodeFlags
	policy      policyFlags
	once        bool
	dryRun      bool
	output      string
	verbose     bool
	noHeaders   bool
	podLogDir   string
	noCRI       bool
	endpoint    string
	selector    string
	interval    time.Duration
	fast        time.Duration
	metricsAddr string
	webConfig   string
	metricsAuth string
	metricsSrv  metricsserver.Options
	pprof       bool
	kmsgPath    string
	kernelLog   string
	kubeEvents  bool
	nodeName    string
	log         cli.LogFlags
	preempt     bool
	preemptDry  bool
}

func newAgentCmd(s streams) *cobra.Command {
	f := &agentFlags{}
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Keep the OOM policy true on this node (the DaemonSet's command)",
		Long: `Find the target containers (through the container runtime, or with --no-cri every
container cgroup the kubelet made, narrowed by --cgroup-selector), write
memory.oom.group=0 into their cgroups, raise every one of their processes to
the policy's oom_score_adj, lower protected host daemons, and repair drift.
New processes and containers are protected as they appear (netlink process
connector, inotify on the cgroup tree, runtime events); a periodic pass
re-checks everything.

Start with "podwarden agent --once --dry-run": it says how many containers it
found and why each is or is not a target (every one with -v), then every
change it would make and why, and writes nothing.

Without a runtime (--no-cri) pods' labels and namespaces are unknown: a
policy whose selector names labels or namespaces is refused.`,
		Example: `  podwarden agent --once --dry-run -v
  podwarden agent --config /etc/podwarden/policy.yaml --metrics-addr :9808
  podwarden agent --no-cri --once --dry-run -o yaml
  podwarden agent --no-cri --cgroup-selector '/kubepods*/burstable/**' --oom-score-adj 900`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runAgent(cmd, s, f) },
	}
	fl := cmd.Flags()
	f.node.Register(fl)
	f.policy.register(fl, "oom_score_adj for every process of target containers")
	fl.BoolVar(&f.once, "once", false, "make one pass and exit")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the changes a pass would make and write nothing (implies --once)")
	fl.StringVarP(&f.output, "output", "o", "table", "--once output: table, json or yaml")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "--once: list every container found and why it is or is not a target (default: a summary line)")
	fl.BoolVar(&f.noHeaders, "no-headers", false, "--once table output: do not print the tables' header lines")
	fl.BoolVar(&f.noCRI, "no-cri", false, "do not use a container runtime: every container cgroup the kubelet made is a target (narrow with --cgroup-selector)")
	fl.StringVar(&f.podLogDir, "pod-log-dir", podname.DefaultLogDir, `the kubelet's pod log directories, which name pods with --no-cri ("" to leave them as UIDs)`)
	fl.StringVar(&f.endpoint, "runtime-endpoint", "", "CRI socket (default: containerd, CRI-O, cri-dockerd in that order)")
	fl.StringVar(&f.selector, "cgroup-selector", "", "only containers whose cgroup path matches this glob (* one segment, ** any) are targets (policy cgroupSelector)")
	fl.DurationVar(&f.interval, "interval", 0, fmt.Sprintf("full reconcile period (policy interval, %v..%v)", policy.MinInterval, policy.MaxInterval))
	fl.DurationVar(&f.fast, "fast-interval", 2*time.Second, fmt.Sprintf("cheap re-check period for flags, OOM counters and (without the process connector) new processes (%v..%v)", agent.MinFastInterval, agent.MaxFastInterval))
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "serve /metrics, /healthz and /readyz on this address (e.g. :9808)")
	fl.StringVar(&f.webConfig, "web-config-file", "", "TLS and basic auth for --metrics-addr: a Prometheus exporter-toolkit web config file, as node_exporter's --web.config.file (docs/agent.md)")
	fl.StringVar(&f.metricsAuth, "metrics-auth", authNone, `who may read /metrics (and /debug/pprof/): "none" (anyone who can connect), or "kubernetes": a bearer token the API server accepts (TokenReview) for a user allowed to get the non-resource URL /metrics (SubjectAccessReview), as kubelet does; in-cluster credentials. /healthz and /readyz stay open`)
	def := metricsserver.DefaultOptions("")
	f.metricsSrv = def
	fl.IntVar(&f.metricsSrv.MaxConns, "metrics-max-connections", def.MaxConns, fmt.Sprintf("most open connections to --metrics-addr (1..%d); past it the connection idle longest is closed", metricsserver.MaxMaxConns))
	fl.IntVar(&f.metricsSrv.MaxConnsPerHost, "metrics-max-connections-per-host", 0, "most of those from one source host, an IPv4 address or an IPv6 /64 (0: a quarter of --metrics-max-connections); past it that host's own connection idle longest is closed, or its new one refused")
	fl.DurationVar(&f.metricsSrv.IdleTimeout, "metrics-idle-timeout", def.IdleTimeout, "close a keep-alive connection to --metrics-addr idle this long")
	fl.DurationVar(&f.metricsSrv.ReadTimeout, "metrics-read-timeout", def.ReadTimeout, fmt.Sprintf("time allowed to read a request to --metrics-addr (its header: at most %s)", metricsserver.DefaultReadHeaderTimeout))
	fl.DurationVar(&f.metricsSrv.WriteTimeout, "metrics-write-timeout", def.WriteTimeout, "time allowed to write a response (a pprof profile's ?seconds= must be shorter)")
	fl.BoolVar(&f.pprof, "debug-pprof", false, "also serve Go's profiler at /debug/pprof/ on --metrics-addr (for memory and CPU profiles; off by default)")
	fl.StringVar(&f.kmsgPath, "kmsg-path", "/dev/kmsg", `kernel log device read for OOM reports ("" to use memory.events counters only)`)
	fl.StringVar(&f.kernelLog, "kernel-log", agent.SourceAuto, "where OOM kills are learnt from: auto (kmsg, then syslog, then memory.events), kmsg, syslog (the syslog(2) call, needs CAP_SYSLOG) or memory.events")
	fl.BoolVar(&f.kubeEvents, "kube-events", false, "post OOM kills as Kubernetes Events on the pod and node (in-cluster credentials)")
	fl.StringVar(&f.nodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name, the Events' source (default $NODE_NAME)")
	f.log.Register(fl)
	fl.BoolVar(&f.preempt, "preempt", false, "act before the kernel OOM killer: end one process of the target that causes memory pressure (policy preempt.enabled, on in the Helm chart; docs/policy.md)")
	fl.BoolVar(&f.preemptDry, "preempt-dry-run", false, "with --preempt: choose and report victims (log, metric, Event) but send no signal (policy preempt.dryRun)")
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
	if fl.Changed("preempt") {
		cfg.Preempt.Enabled = f.preempt
	}
	if fl.Changed("preempt-dry-run") {
		cfg.Preempt.DryRun = f.preemptDry
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("policy after flags: %w", err)
	}
	return cfg, nil
}

// flagError names the flag behind a setting agent.Config.Check refused.
func (f *agentFlags) flagError(err error) error {
	var ce *agent.ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	switch ce.Setting {
	case "FastInterval":
		return fmt.Errorf("--fast-interval %s: %w", f.fast, ce.Err)
	case "KernelLog":
		return fmt.Errorf("--kernel-log %q: %w", f.kernelLog, ce.Err)
	case "Policy":
		file := "the built-in policy"
		if f.policy.config != "" {
			file = f.policy.config
		}
		return fmt.Errorf("--no-cri with %s:\n%w", file, ce.Err)
	}
	return err
}

func runAgent(cmd *cobra.Command, s streams, f *agentFlags) error {
	ctx := cmd.Context()
	switch f.output {
	case "table", "json", "yaml":
	default:
		return fmt.Errorf("--output %q: want table, json or yaml", f.output)
	}
	pol, err := f.loadPolicy(cmd)
	if err != nil {
		return err
	}
	// Checked before anything is dialled, so a wrong flag is named first.
	acfg := agent.Config{
		Policy: pol, DryRun: f.dryRun, FastInterval: f.fast, KmsgPath: f.kmsgPath, KernelLog: f.kernelLog,
		OwnNamespace: f.policy.namespace(cmd.Flags()), PodLogDir: f.podLogDir,
	}
	if err := acfg.Check(!f.noCRI); err != nil {
		return f.flagError(err)
	}
	switch f.metricsAuth {
	case authNone, authKubernetes:
	default:
		return fmt.Errorf("--metrics-auth %q: want none or kubernetes", f.metricsAuth)
	}
	f.metricsSrv.Addr, f.metricsSrv.WebConfigFile = f.metricsAddr, f.webConfig
	f.metricsSrv.ReadHeaderTimeout = min(metricsserver.DefaultReadHeaderTimeout, f.metricsSrv.ReadTimeout)
	if err := f.metricsSrv.Validate(); err != nil {
		return fmt.Errorf("--metrics-*: %w", err)
	}
	if f.webConfig != "" {
		if f.metricsAddr == "" {
			return errors.New("--web-config-file needs --metrics-addr")
		}
		if err := web.Validate(f.webConfig); err != nil {
			return fmt.Errorf("--web-config-file %s: %w", f.webConfig, err)
		}
	}
	log, err := f.log.New(s.ErrOut)
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
			return fmt.Errorf("%w (use --no-cri on hosts without a CRI runtime)", err)
		}
		defer client.Close()
		rt = client
	}
	var auth *metricsserver.KubeAuth
	if f.metricsAuth == authKubernetes && f.metricsAddr != "" && !f.once && !f.dryRun {
		if auth, err = kubeAuth(log); err != nil {
			return err
		}
	}
	var reporter *kubeevent.Reporter
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
	agent.RegisterBuildInfo(reg, cli.Version())
	acfg.Proc, acfg.Cgroups, acfg.Runtime, acfg.Log, acfg.Metrics = pfs, cfs, rt, log, agent.NewMetrics(reg)
	if reporter != nil {
		acfg.Reporter = reporter // a nil *Reporter in the interface would not be nil
	}
	a, err := agent.New(acfg)
	if err != nil {
		return err
	}
	if f.once || f.dryRun {
		changes, err := a.Reconcile(ctx)
		if err != nil {
			return err
		}
		return writeOnce(s.Out, onceResult{DryRun: f.dryRun, Containers: a.Candidates(), Targets: a.Targets(), Changes: changeRows(changes)},
			f.output, f.verbose, f.noHeaders)
	}
	if f.metricsAddr != "" {
		srv, err := serveMetrics(ctx, f.metricsSrv, auth, f.pprof, reg, a, log)
		if err != nil {
			return err
		}
		defer srv.Close()
	}
	if pol.Preempt.Enabled {
		var rep preempt.Reporter
		if reporter != nil {
			rep = reporter
		}
		if err := startPreempt(ctx, pol.Preempt, a, pfs, cfs, rep, reg, log); err != nil {
			return err
		}
	}
	return a.Run(ctx)
}

const (
	authNone       = "none"
	authKubernetes = "kubernetes"
)

// kubeAuth checks scrapes' tokens with the API server, through the same
// client (and service account) as the agent's Events.
func kubeAuth(log *slog.Logger) (*metricsserver.KubeAuth, error) {
	cfg, err := kubeevent.InCluster(kubeevent.ServiceAccountDir, os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("--metrics-auth kubernetes: %w", err)
	}
	cfg.UserAgent = "podwarden-agent/" + cli.Version()
	api, err := kubeevent.NewRESTClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("--metrics-auth kubernetes: %w", err)
	}
	return metricsserver.NewKubeAuth(api, metricsserver.AuthOptions{}, log), nil
}

// serveMetrics serves /metrics, /healthz and /readyz with o's bounds and
// the TLS and basic auth of o's exporter-toolkit web config file (as
// node_exporter does). With auth, /metrics and the profiler need a token
// the API server accepts and authorises; the probes' paths stay open
// because kubelet's probes carry no token.
func serveMetrics(ctx context.Context, o metricsserver.Options, auth *metricsserver.KubeAuth, withPprof bool, reg *prometheus.Registry, a *agent.Agent, log *slog.Logger) (*metricsserver.Server, error) {
	protect := func(path string, h http.Handler) http.Handler {
		if auth == nil {
			return h
		}
		return auth.Protect(path, h)
	}
	mux := http.NewServeMux()
	// Uncompressed: gzip costs about 1 MiB of flate state per scrape (and
	// as much of heap the runtime then keeps) to save a few KiB on a
	// node-local scrape of a page of about 10 KiB. At most a few gathers
	// at once: each holds a copy of every series; more get 503.
	mux.Handle("/metrics", protect("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		DisableCompression: true, MaxRequestsInFlight: 4,
	})))
	mux.HandleFunc("/healthz", a.ServeHealth)
	mux.HandleFunc("/readyz", a.ServeReady)
	if withPprof {
		// Behind the same TLS and auth as /metrics; RBAC names it
		// nonResourceURLs: ["/debug/pprof/*"].
		pp := http.NewServeMux()
		pp.HandleFunc("/debug/pprof/", pprof.Index)
		pp.HandleFunc("/debug/pprof/profile", pprof.Profile)
		pp.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.Handle("/debug/pprof/", protect("/debug/pprof/", pp))
	}
	srv, err := metricsserver.Serve(ctx, o, mux, log)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr %s: %w", o.Addr, err)
	}
	// A crowd at the port shows as evictions and refusals, not as an
	// agent that is slow or gone.
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "podwarden_metrics_connections", Help: "Open connections to the metrics port."},
			func() float64 { return float64(srv.Stats().Open) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "podwarden_metrics_connections_closed_total", Help: "Connections to the metrics port closed by --metrics-max-connections: evicted (idle, to make room) or refused (every connection busy).", ConstLabels: prometheus.Labels{"reason": "evicted"}},
			func() float64 { return float64(srv.Stats().Evicted) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "podwarden_metrics_connections_closed_total", Help: "Connections to the metrics port closed by --metrics-max-connections: evicted (idle, to make room) or refused (every connection busy).", ConstLabels: prometheus.Labels{"reason": "refused"}},
			func() float64 { return float64(srv.Stats().Refused) }),
	)
	return srv, nil
}
