package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"podwarden/internal/cli"
	"podwarden/internal/status"
)

type statusFlags struct {
	kubeconfig string
	context    string
	namespace  string
	selector   string
	output     string
	noHeaders  bool
	timeout    time.Duration
	qps        float64
	burst      int
	inflight   int
}

func newStatusCmd(s streams) *cobra.Command {
	f := &statusFlags{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every node's agent: readiness, protected containers, OOM kills, drift repairs",
		Long: `List the podwarden agent pods of the cluster, one per node, with their
readiness, and read each agent's /metrics through the API server's pod proxy:
protected containers and processes, OOM kills in target pods and drift
repairs since the agent started. An agent whose metrics cannot be read is
shown with the reason; the others are still shown. Nodes that have no agent
pod are listed at the end.

Uses the kubeconfig like kubectl (--kubeconfig, $KUBECONFIG, ~/.kube/config,
or the in-cluster ServiceAccount). The user needs the chart's
podwarden-viewer ClusterRole bound in the agents' namespace (pods list,
pods/proxy get), and podwarden-node-viewer to see nodes without an agent.

Reading a large cluster: the pod and node lists are read in pages of 500.
At most --max-inflight agents are read at once, and reads start at most
--qps a second (--burst at once): the pod proxy is a long-running request
that the API server's priority and fairness does not queue, so these are
what bound status's load on it. Each agent gets --timeout from when its
request is sent; an agent that does not answer in time is listed with the
others that could not be read, and holds one of the --max-inflight slots
meanwhile. With the defaults 1,000 agents take a few seconds
(docs/kubernetes.md has measured figures). On a terminal, status shows its
progress on stderr while it reads.`,
		Example: `  podwarden status
  podwarden status -n podwarden-system -o json
  podwarden status --context prod -l app.kubernetes.io/instance=podwarden
  podwarden status -o name`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runStatus(cmd, s, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
	fl.StringVar(&f.context, "context", "", "kubeconfig context (default: the current one)")
	fl.StringVarP(&f.namespace, "namespace", "n", "podwarden-system", "namespace of the podwarden DaemonSet")
	fl.StringVarP(&f.selector, "selector", "l", "app.kubernetes.io/name=podwarden", "label selector of the agent pods")
	fl.StringVarP(&f.output, "output", "o", "table", "output format: table, json, yaml or name (the agent pods, pod/NAME)")
	fl.BoolVar(&f.noHeaders, "no-headers", false, "table: do not print the tables' header lines")
	fl.DurationVar(&f.timeout, "timeout", status.DefaultMetricsTimeout, "time allowed to read one agent's metrics, from when its request is sent")
	fl.Float64Var(&f.qps, "qps", status.DefaultQPS, "agent reads started per second at most (-1: no limit)")
	fl.IntVar(&f.burst, "burst", status.DefaultBurst, "agent reads started at once before --qps paces them")
	fl.IntVar(&f.inflight, "max-inflight", status.DefaultMaxInflight, "agents read at the same time at most")
	return cmd
}

func runStatus(cmd *cobra.Command, s streams, f *statusFlags) error {
	switch f.output {
	case "table", "json", "yaml", "name":
	default:
		return fmt.Errorf("--output %q: want table, json, yaml or name", f.output)
	}
	if f.timeout <= 0 || f.inflight <= 0 || f.burst <= 0 || f.qps == 0 {
		return fmt.Errorf("--timeout, --max-inflight, --burst and --qps must be positive (--qps -1: no limit)")
	}
	cfg, err := loadKubeconfig(f.kubeconfig, f.context)
	if err != nil {
		return err
	}
	// Only the core/v1 client: a full clientset would add every API
	// group's client to the binary.
	client, err := typedcorev1.NewForConfig(status.ClientConfig(cfg))
	if err != nil {
		return fmt.Errorf("kubernetes client for %s: %w", cfg.Host, err)
	}
	progress := newProgressLine(s.ErrOut, time.Now)
	st, err := status.Read(cmd.Context(), client, status.Options{
		Namespace: f.namespace, Selector: f.selector, MetricsTimeout: f.timeout,
		QPS: f.qps, Burst: f.burst, MaxInflight: f.inflight, Progress: progress.update,
	})
	progress.clear()
	if err != nil {
		return err
	}
	switch f.output {
	case "json", "yaml":
		// apiVersion and kind first, as every podwarden document
		// (docs/schemas/status.schema.json).
		return cli.WriteStructured(s.Out, f.output, struct {
			cli.TypeMeta
			status.Cluster
		}{cli.Meta("ClusterStatus"), st})
	case "name":
		if len(st.Agents) == 0 {
			return fmt.Errorf("no podwarden agent pods in namespace %s match %s", st.Namespace, f.selector)
		}
		for _, a := range st.Agents {
			fmt.Fprintf(s.Out, "pod/%s\n", a.Pod)
		}
		return nil
	}
	return writeStatus(s.Out, st, f.noHeaders)
}

// loadKubeconfig loads the client config as kubectl does. Its errors name
// the kubeconfig files tried: client-go's own for none found only says "try
// setting KUBERNETES_MASTER".
func loadKubeconfig(path, context string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	tried := strings.Join(rules.GetLoadingPrecedence(), ", ")
	switch {
	case clientcmd.IsEmptyConfig(err):
		return nil, fmt.Errorf("no kubeconfig: tried %s (none exists or none has a cluster), and this is not a pod with a service account; use --kubeconfig or $KUBECONFIG", tried)
	case err != nil:
		return nil, fmt.Errorf("loading kubeconfig %s: %w", tried, err)
	}
	return cfg, nil
}

// progressLine shows how far the agent reads are, on stderr when it is a
// terminal: from a second into the reads, at most five times a second, on
// one line that is cleared at the end, so a quick status prints nothing and
// scripts never see it.
type progressLine struct {
	w           io.Writer // nil: not a terminal
	now         func() time.Time
	start, last time.Time
	shown       bool
}

func newProgressLine(errOut io.Writer, now func() time.Time) *progressLine {
	p := &progressLine{now: now, start: now()}
	if f, ok := errOut.(*os.File); ok {
		if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
			p.w = f
		}
	}
	return p
}

func (p *progressLine) update(pr status.Progress) {
	t := p.now()
	if p.w == nil || t.Sub(p.start) < time.Second || t.Sub(p.last) < 200*time.Millisecond {
		return
	}
	p.last, p.shown = t, true
	fmt.Fprintf(p.w, "\r\x1b[Kreading agents: %d/%d, %d unreadable", pr.Done, pr.Total, pr.Unreadable)
}

func (p *progressLine) clear() {
	if p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}

// writeStatus prints the kubectl-style tables.
func writeStatus(out io.Writer, st status.Cluster, noHeaders bool) error {
	w := cli.NewBufWriter(out)
	header := func(tw io.Writer, h string) {
		if !noHeaders {
			fmt.Fprintln(tw, h)
		}
	}
	if len(st.Agents) == 0 {
		fmt.Fprintf(w, "No podwarden agent pods in namespace %s.\n", st.Namespace)
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		header(tw, "NODE\tAGENT\tREADY\tRESTARTS\tPROTECTED\tPROCESSES\tOOM KILLS\tDRIFT REPAIRS\tERRORS")
		for _, a := range st.Agents {
			ready := "no"
			if a.Ready {
				ready = "yes"
			}
			node := a.Node
			if node == "" {
				node = "<unscheduled>"
			}
			cols := []string{"-", "-", "-", "-", "-"}
			if m := a.Metrics; m != nil {
				cols = []string{num(m.ProtectedContainers), num(m.ProtectedProcesses), num(m.OOMKillsTotal), num(m.DriftRepairsTotal), num(m.ErrorsTotal)}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", node, a.Pod, ready, a.Restarts, strings.Join(cols, "\t"))
		}
		tw.Flush()
	}

	var kills, early, notActed, kept [][]string
	var protected [][]string
	for _, a := range st.Agents {
		if a.Metrics == nil {
			continue
		}
		for _, k := range a.Metrics.EarlyKills {
			early = append(early, []string{a.Node, cli.Dash(status.PodRef(k.Namespace, k.Pod)), cli.Dash(k.Container), k.Scope, k.Signal, num(k.Count)})
		}
		for _, sig := range slices.Sorted(maps.Keys(a.Metrics.KeptAlive)) {
			kept = append(kept, []string{a.Node, sig, num(a.Metrics.KeptAlive[sig])})
		}
		for _, reason := range slices.Sorted(maps.Keys(a.Metrics.NotActed)) {
			notActed = append(notActed, []string{a.Node, reason, num(a.Metrics.NotActed[reason])})
		}
		for _, k := range a.Metrics.OOMKills {
			if k.Count > 0 {
				kills = append(kills, []string{a.Node, cli.Dash(status.PodRef(k.Namespace, k.Pod)), cli.Dash(k.Container), k.Kind, num(k.Count)})
			}
		}
		if len(a.Metrics.ProtectedPods) > 0 {
			protected = append(protected, []string{a.Node, strings.Join(a.Metrics.ProtectedPods, ", ")})
		}
	}
	// section prints a titled table, nothing when it has no rows.
	section := func(title, head string, rows [][]string) {
		if len(rows) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s:\n", title)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		header(tw, head)
		for _, r := range rows {
			fmt.Fprintln(tw, strings.Join(r, "\t"))
		}
		tw.Flush()
	}
	section("Protected pods", "NODE\tPODS", protected)
	section("OOM kills in target pods, and of host processes in node OOMs (since each agent started)", "NODE\tPOD\tCONTAINER\tKIND\tKILLS", kills)
	section("Early kills: processes podwarden ended before the kernel's OOM killer (since each agent started)", "NODE\tPOD\tCONTAINER\tSCOPE\tSIGNAL\tKILLS", early)
	section("Of those, left alive: memory came back after the signal (a notebook kernel interrupted by SIGINT keeps its session)", "NODE\tLAST SIGNAL\tTIMES", kept)
	section("Memory ran short and podwarden ended nothing, since no kill could help (docs/policy.md)", "NODE\tREASON\tTIMES", notActed)
	var unreadable []status.Agent
	for _, a := range st.Agents {
		if a.Error != "" {
			unreadable = append(unreadable, a)
		}
	}
	if len(unreadable) > 0 {
		fmt.Fprintln(w, "\nAgents whose metrics could not be read:")
		for _, a := range unreadable {
			fmt.Fprintf(w, "  %s (%s): %s\n", a.Node, a.Pod, a.Error)
		}
	}
	if len(st.NodesWithoutAgent) > 0 {
		fmt.Fprintf(w, "\nNodes without an agent (%d): %s\n", len(st.NodesWithoutAgent), strings.Join(st.NodesWithoutAgent, ", "))
	}
	for _, warn := range st.Warnings {
		fmt.Fprintf(w, "\nWarning: %s\n", warn)
	}
	return w.Flush()
}

// num prints a metric value: counters and gauges here are whole numbers.
func num(v float64) string {
	if v == float64(int64(v)) {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}
