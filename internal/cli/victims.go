package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
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

// Exit codes of `victims --exit-code`, the convention of diff(1) and of
// node-problem-detector's custom plugins (0 OK, 1 problem, 2 unknown).
const (
	victimsExitProblem = 1
	victimsExitError   = ExitUnknown
)

type victimsFlags struct {
	viewFlags
	limit    int
	exitCode bool
}

func newVictimsCmd(s Streams, pods *podSource) *cobra.Command {
	f := &victimsFlags{}
	cmd := &cobra.Command{
		Use:   "victims",
		Short: "Predict the order in which the OOM killer would kill processes",
		Long: `Predict, from the kernel's own badness formula, which processes an OOM would
kill and in what order if memory kept running out: for the whole node, or for
an OOM inside one memory cgroup (--cgroup). A victim whose cgroup (or an
ancestor) has memory.oom.group=1 takes every process of that cgroup with it:
those members are listed under it. A verdict names the problem when system
processes would die before the pod process actually holding the memory, and
the last line says what to do about it.

BADNESS is what the kernel compares: the memory a process holds (RSS, swap,
page tables) plus oom_score_adj/1000 of the memory the OOM may use (RAM and
swap for a node OOM), shown as a size; the highest dies first. A process at
-997 on a 192 GiB node counts as about -191 GiB, so it outlives everything.

Pods are shown as namespace/name, named from the kubelet's /var/log/pods
directories (podwarden-agent asks the container runtime first), else by UID.
A namespace with no victim says so on stderr and, as kubectl does, prints an
empty list. -o json and -o yaml print an OOMPrediction (apiVersion
podwarden.dev/v1; keys and schema in docs/schemas). --no-headers prints the rows only: no header, "more", verdict or
next line.

With --exit-code the exit status is 0 when the verdict finds no problem, 1
when it does, and 2 when victims could not decide (any error, a bad flag
too): the convention of node-problem-detector's custom plugins.`,
		Example: `  podwarden victims
  podwarden victims --limit 5 -o json
  podwarden victims -n hub -o wide
  podwarden victims --exit-code >/dev/null || echo "this node needs podwarden"
  podwarden victims --cgroup /kubepods/burstable/pod<uid>/<container-id>`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := runVictims(cmd.Context(), s, f)
			if err != nil && f.exitCode && !errors.As(err, new(*ExitError)) {
				return &ExitError{Code: victimsExitError, Err: err}
			}
			return err
		},
	}
	f.register(cmd.Flags(), pods, viewHelp{
		namespace: "only show victims in pods of this namespace (ranks stay node-wide)",
		cgroup:    "predict an OOM inside this memory cgroup instead of a node OOM",
		output:    "table", outputs: "table, wide, json, yaml or name (process/PID in kill order)",
		noHeaders: "table, wide",
	})
	cmd.Flags().IntVar(&f.limit, "limit", 20, "how many victims to show (0 = all)")
	cmd.Flags().BoolVar(&f.exitCode, "exit-code", false, "exit 1 when the verdict is a problem, 2 on errors (for scripts and node health checks)")
	return cmd
}

func runVictims(ctx context.Context, s Streams, f *victimsFlags) error {
	switch f.output {
	case "table", "wide", "json", "yaml", "name":
	default:
		return fmt.Errorf("--output %q: want table, wide, json, yaml or name", f.output)
	}
	if f.limit < 0 {
		return fmt.Errorf("--limit %d: must be 0 or more", f.limit)
	}
	snap, err := f.node.snapshot(ctx, procfs.FieldStat|procfs.FieldStatus|procfs.FieldOOMScore|procfs.FieldOOMScoreAdj|procfs.FieldCgroup)
	if err != nil {
		return err
	}
	d, err := snap.Domain(strings.TrimSuffix(f.cgroup, "/"))
	if err != nil {
		return err
	}
	pods := f.pods.resolver()
	var errs []error
	tasks := snap.Tasks()
	// The verdict names pods the way the table does.
	for i := range tasks {
		tasks[i].Pod = pods.Name(ctx, tasks[i].Pod)
	}
	victims := oom.Predict(tasks, d, snap.GroupFlag(&errs))
	verdict := oom.Judge(victims, tasks, d)
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(s.ErrOut, "podwarden: warning: some memory.oom.group flags could not be read, group kills may be missing: %s\n", termsafe.Escape(err.Error()))
	}
	shown, matched := f.show(ctx, snap, pods, victims)
	if matched == 0 {
		// kubectl's way with an empty list: say so on stderr, print an
		// empty list, exit 0. The verdict is the node's, so it stays.
		fmt.Fprintf(s.ErrOut, "podwarden: %s\n", f.noMatch(pods))
	}
	next := nextStep(verdict, d)
	v := victimsView{snap: snap, pods: pods, ctx: ctx, domain: d}
	switch f.output {
	case "json", "yaml":
		err = WriteStructured(s.Out, f.output, v.doc(shown, verdict, next))
	case "name":
		err = writeVictimNames(s.Out, shown)
	default:
		err = v.table(s.Out, shown, victimsTable{
			more: matched - len(shown), namespace: f.namespace, verdict: verdict, next: next,
			wide: f.output == "wide", noHeaders: f.noHeaders,
		})
	}
	if err != nil {
		return err
	}
	if f.exitCode && verdict.Problem {
		return &ExitError{Code: victimsExitProblem}
	}
	return nil
}

// show picks the victims to print: those of --namespace, at most --limit.
// matched is how many --namespace kept, before the limit.
func (f *victimsFlags) show(ctx context.Context, snap *snapshot.Snapshot, pods *podname.Resolver, all []oom.Victim) (shown []oom.Victim, matched int) {
	shown = all
	if f.namespace != "" {
		inNS := func(t oom.Task) bool {
			p, _ := snap.Lookup(t.PID)
			pod, ok := pods.Lookup(ctx, p.Owner.PodUID)
			return ok && pod.Namespace == f.namespace
		}
		shown = nil
		for _, v := range all {
			if inNS(v.Task) || slices.ContainsFunc(v.Members, inNS) {
				shown = append(shown, v)
			}
		}
	}
	matched = len(shown)
	if f.limit > 0 && len(shown) > f.limit {
		shown = shown[:f.limit]
	}
	return shown, matched
}

// noMatch says why there are no victims to show.
func (f *victimsFlags) noMatch(pods *podname.Resolver) string {
	if f.namespace == "" {
		return "no process is a candidate for this OOM"
	}
	hint := ""
	if _, err := strconv.Atoi(f.namespace); err == nil {
		hint = fmt.Sprintf("; -n is the namespace now, as in kubectl: --limit %s sets how many victims to show", f.namespace)
	}
	return fmt.Sprintf("no process of a pod in namespace %s is a victim on this node (%s)%s",
		termsafe.Escape(f.namespace), f.pods.source(pods), hint)
}

// writeVictimNames is -o name: kubectl's TYPE/NAME, one line per process
// in the order they would die (a victim, then the group members it takes).
func writeVictimNames(w io.Writer, shown []oom.Victim) error {
	bw := NewBufWriter(w)
	for _, v := range shown {
		fmt.Fprintf(bw, "process/%d\n", v.Task.PID)
		for _, m := range v.Members {
			fmt.Fprintf(bw, "process/%d\n", m.PID)
		}
	}
	return bw.Flush()
}

// nextStep is the last line of the table: the command that fixes or
// checks what the verdict found.
func nextStep(v oom.Verdict, d oom.Domain) string {
	check := "podwarden victims"
	if !d.Node() {
		check += " --cgroup " + d.Cgroup
	}
	if !v.Problem {
		if v.Hog == nil {
			return "nothing to do; " + check + " shows the order again when the node runs pods"
		}
		return "nothing to do; `podwarden events` lists the OOM kills this node has had"
	}
	fix := "`podwarden agent --once --dry-run` shows the changes the agent would make, and writes nothing; " +
		"run the agent (DaemonSet: docs/kubernetes.md) to make and keep them, then `" + check + "` again"
	hog := v.Hog
	if hog.Adj <= oom.AdjMin {
		return fmt.Sprintf("a pod process at oom_score_adj %d is never killed: find what sets it (`podwarden ps -o wide --pod %s`); %s",
			hog.Adj, hog.Pod, fix)
	}
	var what []string
	if len(v.HostBefore) > 0 {
		what = append(what, fmt.Sprintf("raise %s's processes above the host's (policy podOOMScoreAdj, 900) and lower the host daemons "+
			"that matter (policy protected, -900)", hog.Pod))
	}
	if v.GroupMembers > 0 {
		what = append(what, fmt.Sprintf("write memory.oom.group=0 on %s so that one OOM kills one process, not the whole container "+
			"(policy oomGroup: single)", v.GroupCgroup))
	}
	return strings.Join(what, ", and ") + ": " + fix
}

// maxMembersShown bounds the group members listed per victim in the table;
// -o json lists them all.
const maxMembersShown = 5

type victimsView struct {
	ctx    context.Context
	snap   *snapshot.Snapshot
	pods   *podname.Resolver
	domain oom.Domain
}

// victimsTable is what the table prints besides the victims.
type victimsTable struct {
	more      int    // victims --limit left out
	namespace string // --namespace, which the "more" line names
	verdict   oom.Verdict
	next      string
	wide      bool
	noHeaders bool // rows only, as kubectl's --no-headers: no header, "more", verdict or next line
}

func (v victimsView) table(w io.Writer, shown []oom.Victim, o victimsTable) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if !o.noHeaders && len(shown) > 0 {
		if o.wide {
			fmt.Fprintln(tw, "RANK\tPID\tCOMM\tBADNESS\tPOINTS\tOOM_SCORE\tADJ\tRSS\tQOS\tPOD\tCONTAINER\tCGROUP")
		} else {
			fmt.Fprintln(tw, "RANK\tPID\tCOMM\tBADNESS\tOOM_SCORE\tADJ\tRSS\tPOD\tCGROUP")
		}
	}
	row := func(rank, pid, badness, points string, t oom.Task) {
		p, _ := v.snap.Lookup(t.PID)
		if o.wide {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%+d\t%s\t%s\t%s\t%s\t%s\n", rank, pid, Dash(t.Comm), badness, points, p.OOMScore, t.Adj,
				oom.HumanBytes(p.RSS()), Dash(string(p.Owner.QoS)), Dash(t.Pod), Dash(cgroup.ShortID(p.Owner.ContainerID)), Dash(t.Cgroup))
			return
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%+d\t%s\t%s\t%s\n", rank, pid, Dash(t.Comm), badness, p.OOMScore, t.Adj,
			oom.HumanBytes(p.RSS()), Dash(t.Pod), Dash(t.Cgroup))
	}
	for _, vic := range shown {
		row(strconv.Itoa(vic.Rank), strconv.Itoa(vic.Task.PID), signedBytes(vic.Points), strconv.FormatInt(vic.Points, 10), vic.Task)
		members := slices.Clone(vic.Members)
		// The biggest members first: they are why the group kill matters.
		slices.SortStableFunc(members, func(a, b oom.Task) int { return cmp.Compare(b.Pages(), a.Pages()) })
		for i, m := range members {
			if i == maxMembersShown && len(members) > maxMembersShown+1 {
				cols := 6 // the empty cells from COMM to CGROUP
				if o.wide {
					cols = 9
				}
				fmt.Fprintf(tw, "\t+%d more\t(group)%s%s\n", len(members)-i, strings.Repeat("\t", cols), Dash(vic.GroupCgroup))
				break
			}
			row("", "+"+strconv.Itoa(m.PID), "(group)", "-", m)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if o.noHeaders {
		return nil
	}
	if o.more > 0 {
		in := ""
		if o.namespace != "" {
			in = " in namespace " + termsafe.Escape(o.namespace)
		}
		fmt.Fprintf(w, "... %d more victims%s (--limit 0 shows all)\n", o.more, in)
	}
	prefix := "verdict: "
	if o.verdict.Problem {
		prefix = "PROBLEM: "
	}
	// The verdict and the next step name processes, pods and cgroups.
	_, err := fmt.Fprintf(w, "\n%s%s\nnext: %s\n", prefix, termsafe.Escape(o.verdict.Text), termsafe.Escape(o.next))
	return err
}

// signedBytes shows badness points (pages) as a size with a sign.
func signedBytes(points int64) string {
	if points < 0 {
		return "-" + oom.HumanBytes(uint64(-points)*oom.PageSize)
	}
	return oom.HumanBytes(uint64(points) * oom.PageSize)
}

// victimRow is the JSON shape of one predicted kill; its keys are a public
// interface.
type victimRow struct {
	Rank         int         `json:"rank"`
	PID          int         `json:"pid"`
	Comm         string      `json:"comm"`
	Points       int64       `json:"points"`
	BadnessBytes int64       `json:"badness_bytes"`
	OOMScore     int         `json:"oom_score"`
	OOMScoreAdj  int         `json:"oom_score_adj"`
	RSSBytes     uint64      `json:"rss_bytes"`
	Cgroup       string      `json:"cgroup"`
	PodUID       string      `json:"pod_uid,omitempty"`
	Namespace    string      `json:"pod_namespace,omitempty"`
	PodName      string      `json:"pod_name,omitempty"`
	ContainerID  string      `json:"container_id,omitempty"`
	GroupCgroup  string      `json:"group_cgroup,omitempty"`
	Members      []victimRow `json:"members,omitempty"`
}

// victimsDoc is the document `victims -o json|yaml` prints
// (docs/schemas/victims.schema.json).
type victimsDoc struct {
	TypeMeta
	Domain     string      `json:"domain"`
	TotalPages uint64      `json:"total_pages"`
	Victims    []victimRow `json:"victims"`
	Verdict    oom.Verdict `json:"verdict"`
	Next       string      `json:"next"`
}

func (v victimsView) doc(shown []oom.Victim, verdict oom.Verdict, next string) victimsDoc {
	row := func(t oom.Task, rank int, points int64) victimRow {
		p, _ := v.snap.Lookup(t.PID)
		pod, _ := v.pods.Lookup(v.ctx, p.Owner.PodUID)
		return victimRow{Rank: rank, PID: t.PID, Comm: t.Comm, Points: points, BadnessBytes: points * oom.PageSize,
			OOMScore: p.OOMScore, OOMScoreAdj: t.Adj, RSSBytes: p.RSS(), Cgroup: t.Cgroup,
			PodUID: p.Owner.PodUID, Namespace: pod.Namespace, PodName: pod.Name, ContainerID: p.Owner.ContainerID}
	}
	doc := victimsDoc{TypeMeta: Meta("OOMPrediction"), Domain: "node", TotalPages: v.domain.TotalPages, Victims: []victimRow{}, Verdict: verdict, Next: next}
	if !v.domain.Node() {
		doc.Domain = v.domain.Cgroup
	}
	for _, vic := range shown {
		r := row(vic.Task, vic.Rank, vic.Points)
		r.GroupCgroup = vic.GroupCgroup
		for _, m := range vic.Members {
			points, _ := oom.Badness(m, v.domain.TotalPages)
			r.Members = append(r.Members, row(m, vic.Rank, points))
		}
		doc.Victims = append(doc.Victims, r)
	}
	return doc
}
