package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"podwarden/internal/cgroup"
	"podwarden/internal/oom"
	"podwarden/internal/podname"
	"podwarden/internal/procfs"
	"podwarden/internal/snapshot"
	"podwarden/internal/termsafe"
)

type psFlags struct {
	viewFlags
	extended bool
	kernel   bool
	pod      string
}

func newPsCmd(s Streams, pods *podSource) *cobra.Command {
	f := &psFlags{}
	cmd := &cobra.Command{
		Use:   "ps",
		Short: "Print the process tree with OOM scores",
		Long: `Print every process as a tree with its oom_score and oom_score_adj, the
way "if memory ran out now" is decided. -o wide adds memory, cgroup and pod
(namespace/name); -o json and -o yaml print a ProcessList (apiVersion
podwarden.dev/v1, items: one object per process; keys and schema in
docs/schemas), -o name process/PID per line (kubectl's TYPE/NAME).

Pods are named from the kubelet's /var/log/pods directories (podwarden-agent
asks the container runtime first); a pod neither knows shows its UID. A
filter (--pod, -n, --cgroup) that matches no process says so on stderr
and, as kubectl does, prints an empty list and exits 0.`,
		Example: `  podwarden ps
  podwarden ps -o wide --pod hub/jupyter-alice
  podwarden ps -o wide -n hub
  podwarden ps -o json --cgroup /kubepods`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runPs(cmd.Context(), s, f) },
	}
	f.register(cmd.Flags(), pods, viewHelp{
		namespace: "only processes of pods in this namespace",
		cgroup:    "only processes whose cgroup is this path or below it",
		output:    "tree", outputs: "tree, wide, json, yaml or name",
		noHeaders: "wide",
	})
	cmd.Flags().BoolVar(&f.extended, "extended", false, "tree: also print each command line")
	cmd.Flags().BoolVar(&f.kernel, "kernel-threads", false, "include kernel threads")
	cmd.Flags().StringVar(&f.pod, "pod", "", "only processes of this pod: namespace/name, name or UID")
	return cmd
}

func (f *psFlags) fields() (procfs.Field, error) {
	base := procfs.FieldStat | procfs.FieldOOMScore | procfs.FieldOOMScoreAdj
	switch f.output {
	case "tree":
		if f.extended {
			base |= procfs.FieldCmdline
		}
		if f.pod != "" || f.namespace != "" || f.cgroup != "" {
			base |= procfs.FieldCgroup
		}
		return base, nil
	case "name":
		if f.pod != "" || f.namespace != "" || f.cgroup != "" {
			base |= procfs.FieldCgroup
		}
		return base, nil
	case "wide", "json", "yaml":
		return base | procfs.FieldStatus | procfs.FieldCgroup | procfs.FieldCmdline, nil
	}
	return 0, fmt.Errorf("--output %q: want tree, wide, json, yaml or name", f.output)
}

func runPs(ctx context.Context, s Streams, f *psFlags) error {
	fields, err := f.fields()
	if err != nil {
		return err
	}
	snap, err := f.node.snapshot(ctx, fields)
	if err != nil {
		return err
	}
	pods := f.pods.resolver()
	procs := f.filter(ctx, snap.Procs, pods)
	if len(procs) == 0 && (f.pod != "" || f.namespace != "" || f.cgroup != "") {
		// kubectl's way with an empty list: say so on stderr, print an
		// empty list (-o json|yaml) or nothing, exit 0.
		fmt.Fprintf(s.ErrOut, "podwarden: %s\n", f.noMatch(pods))
	}
	name := namer(ctx, pods)
	switch f.output {
	case "json", "yaml":
		return WriteStructured(s.Out, f.output, psList{TypeMeta: Meta("ProcessList"), Items: psRows(ctx, procs, pods)})
	case "name":
		return writePsNames(s.Out, procs)
	case "wide":
		if len(procs) == 0 {
			return nil
		}
		return writePsWide(s.Out, procs, name, f.noHeaders)
	}
	return writePsTree(s.Out, procs, f.extended)
}

func (f *psFlags) filter(ctx context.Context, all []snapshot.Process, pods *podname.Resolver) []snapshot.Process {
	cg := strings.TrimSuffix(f.cgroup, "/")
	out := make([]snapshot.Process, 0, len(all))
	for _, p := range all {
		if p.Kernel && !f.kernel {
			continue
		}
		if f.pod != "" && !pods.Match(ctx, p.Owner.PodUID, f.pod) {
			continue
		}
		if f.namespace != "" {
			if pod, ok := pods.Lookup(ctx, p.Owner.PodUID); !ok || pod.Namespace != f.namespace {
				continue
			}
		}
		if cg != "" && !cgroup.Within(p.MemCgroup, cg) && !cgroup.Within(p.Cgroup, cg) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// noMatch says which filter found nothing, and where pods were named from.
func (f *psFlags) noMatch(pods *podname.Resolver) string {
	var what []string
	if f.pod != "" {
		what = append(what, "pod "+f.pod)
	}
	if f.namespace != "" {
		what = append(what, "namespace "+f.namespace)
	}
	if f.cgroup != "" {
		what = append(what, "cgroup "+f.cgroup)
	}
	src := ""
	if f.pod != "" || f.namespace != "" {
		src = f.pods.source(pods) + "; "
	}
	return termsafe.Escape(fmt.Sprintf("no process on this node matches %s (%spodwarden ps -o wide lists every pod's processes)",
		strings.Join(what, " and "), src))
}

// writePsNames is -o name: kubectl's TYPE/NAME, one process per line.
func writePsNames(w io.Writer, procs []snapshot.Process) error {
	bw := NewBufWriter(w)
	for _, p := range procs {
		fmt.Fprintf(bw, "process/%d\n", p.PID)
	}
	return bw.Flush()
}

// treeNode orders procs depth-first by PID under their parents; a process
// whose parent is not shown becomes a root, so filtered views stay trees.
type treeNode struct {
	p     snapshot.Process
	depth int
}

func tree(procs []snapshot.Process) []treeNode {
	index := make(map[int]int, len(procs))
	for i, p := range procs {
		index[p.PID] = i
	}
	children := make(map[int][]int, len(procs))
	var roots []int
	for i, p := range procs {
		if _, ok := index[p.PPID]; ok && p.PPID != p.PID {
			children[p.PPID] = append(children[p.PPID], i)
		} else {
			roots = append(roots, i)
		}
	}
	out := make([]treeNode, 0, len(procs))
	visited := make([]bool, len(procs))
	// An explicit stack: process trees can be deep enough to make recursion
	// a risk, and a corrupt fixture could even hold a cycle.
	type frame struct{ i, depth int }
	stack := make([]frame, 0, 64)
	for r := len(roots) - 1; r >= 0; r-- {
		stack = append(stack, frame{roots[r], 0})
	}
	for len(stack) > 0 {
		fr := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if visited[fr.i] {
			continue
		}
		visited[fr.i] = true
		out = append(out, treeNode{procs[fr.i], fr.depth})
		kids := children[procs[fr.i].PID]
		for k := len(kids) - 1; k >= 0; k-- {
			stack = append(stack, frame{kids[k], fr.depth + 1})
		}
	}
	// Processes caught in a parent cycle are still shown, at the top level.
	for i := range procs {
		if !visited[i] {
			out = append(out, treeNode{procs[i], 0})
		}
	}
	return out
}

func writePsTree(w io.Writer, procs []snapshot.Process, extended bool) error {
	bw := NewBufWriter(w)
	for _, n := range tree(procs) {
		indent := strings.Repeat("  ", n.depth)
		if extended {
			fmt.Fprintf(bw, "%s[%d] %s\n%s  %s\n%s  %d (%+d)\n", indent, n.p.PID, termsafe.Escape(n.p.Comm),
				indent, termsafe.Escape(shellJoin(n.p.Cmdline)), indent, n.p.OOMScore, n.p.OOMScoreAdj)
			continue
		}
		fmt.Fprintf(bw, "%s[%d] %s: %d (%+d)\n", indent, n.p.PID, termsafe.Escape(n.p.Comm), n.p.OOMScore, n.p.OOMScoreAdj)
	}
	return bw.Flush()
}

func writePsWide(w io.Writer, procs []snapshot.Process, pod func(uid string) string, noHeaders bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if !noHeaders {
		fmt.Fprintln(tw, "PID\tPPID\tOOM\tADJ\tRSS\tSWAP\tQOS\tPOD\tCONTAINER\tCGROUP\tCOMMAND")
	}
	for _, n := range tree(procs) {
		p := n.p
		cmd := p.Comm
		if len(p.Cmdline) > 0 {
			cmd = shellJoin(p.Cmdline)
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%+d\t%s\t%s\t%s\t%s\t%s\t%s\t%s%s\n", p.PID, p.PPID, p.OOMScore, p.OOMScoreAdj,
			oom.HumanBytes(p.RSS()), oom.HumanBytes(p.Swap), Dash(string(p.Owner.QoS)), Dash(pod(p.Owner.PodUID)),
			Dash(cgroup.ShortID(p.Owner.ContainerID)), termsafe.Escape(p.MemCgroup), strings.Repeat("  ", n.depth), termsafe.Escape(cmd))
	}
	return tw.Flush()
}

// psList is the document `ps -o json|yaml` prints
// (docs/schemas/ps.schema.json), a kubectl-style List.
type psList struct {
	TypeMeta
	Items []psRow `json:"items"`
}

// psRow is the JSON shape of one process; its keys are a public interface.
type psRow struct {
	PID         int      `json:"pid"`
	PPID        int      `json:"ppid"`
	Comm        string   `json:"comm"`
	Cmdline     []string `json:"cmdline"`
	State       string   `json:"state"`
	UID         int      `json:"uid"`
	Threads     int      `json:"threads"`
	Kernel      bool     `json:"kernel_thread,omitempty"`
	OOMScore    int      `json:"oom_score"`
	OOMScoreAdj int      `json:"oom_score_adj"`
	RSSBytes    uint64   `json:"rss_bytes"`
	RSSAnon     uint64   `json:"rss_anon_bytes"`
	RSSFile     uint64   `json:"rss_file_bytes"`
	RSSShmem    uint64   `json:"rss_shmem_bytes"`
	SwapBytes   uint64   `json:"swap_bytes"`
	PgTables    uint64   `json:"pgtables_bytes"`
	Cgroup      string   `json:"cgroup"`
	CgroupV1    string   `json:"cgroup_v1_memory,omitempty"`
	PodUID      string   `json:"pod_uid,omitempty"`
	Namespace   string   `json:"pod_namespace,omitempty"`
	PodName     string   `json:"pod_name,omitempty"`
	ContainerID string   `json:"container_id,omitempty"`
	QoS         string   `json:"qos,omitempty"`
	Runtime     string   `json:"runtime,omitempty"`
}

func psRows(ctx context.Context, procs []snapshot.Process, pods *podname.Resolver) []psRow {
	rows := make([]psRow, 0, len(procs))
	for _, p := range procs {
		pod, _ := pods.Lookup(ctx, p.Owner.PodUID)
		cmdline := p.Cmdline
		if cmdline == nil {
			cmdline = []string{}
		}
		rows = append(rows, psRow{
			PID: p.PID, PPID: p.PPID, Comm: p.Comm, Cmdline: cmdline, State: string(p.State),
			UID: p.UID, Threads: p.Threads, Kernel: p.Kernel,
			OOMScore: p.OOMScore, OOMScoreAdj: p.OOMScoreAdj,
			RSSBytes: p.RSS(), RSSAnon: p.RSSAnon, RSSFile: p.RSSFile, RSSShmem: p.RSSShmem,
			SwapBytes: p.Swap, PgTables: p.PgTables,
			Cgroup: p.MemCgroup, CgroupV1: p.CgroupV1Memory,
			PodUID: p.Owner.PodUID, Namespace: pod.Namespace, PodName: pod.Name,
			ContainerID: p.Owner.ContainerID, QoS: string(p.Owner.QoS), Runtime: string(p.Owner.Runtime),
		})
	}
	return rows
}

// shellJoin quotes arguments the way the seed's shlex.join does, so output
// can be pasted into a shell.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := !slices.ContainsFunc([]rune(s), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./-_", r))
	})
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}
