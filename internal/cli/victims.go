package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"podwarden/internal/oom"
	"podwarden/internal/procfs"
	"podwarden/internal/snapshot"
)

type victimsFlags struct {
	node   NodeFlags
	n      int
	cgroup string
	output string
}

func newVictimsCmd(s Streams) *cobra.Command {
	f := &victimsFlags{}
	cmd := &cobra.Command{
		Use:   "victims",
		Short: "Predict the order in which the OOM killer would kill processes",
		Long: `Predict, from the kernel's own badness formula, which processes an OOM would
kill and in what order if memory kept running out: for the whole node, or for
an OOM inside one memory cgroup (--cgroup). A victim whose cgroup (or an
ancestor) has memory.oom.group=1 takes every process of that cgroup with it:
those members are listed under it. A verdict names the problem when system
processes would die before the pod process actually holding the memory.`,
		Example: `  podwarden victims
  podwarden victims -n 5 -o json
  podwarden victims --cgroup /kubepods/burstable/pod<uid>/<container-id>`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runVictims(cmd.Context(), s, f) },
	}
	f.node.Register(cmd.Flags())
	cmd.Flags().IntVarP(&f.n, "number", "n", 20, "how many victims to show (0 = all)")
	cmd.Flags().StringVar(&f.cgroup, "cgroup", "", "predict an OOM inside this memory cgroup instead of a node OOM")
	cmd.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	return cmd
}

func runVictims(ctx context.Context, s Streams, f *victimsFlags) error {
	if f.output != "table" && f.output != "json" {
		return fmt.Errorf("--output %q: want table or json", f.output)
	}
	if f.n < 0 {
		return fmt.Errorf("--number %d: must be 0 or more", f.n)
	}
	snap, err := f.node.snapshot(ctx, procfs.FieldStat|procfs.FieldStatus|procfs.FieldOOMScore|procfs.FieldOOMScoreAdj|procfs.FieldCgroup)
	if err != nil {
		return err
	}
	d, err := snap.Domain(strings.TrimSuffix(f.cgroup, "/"))
	if err != nil {
		return err
	}
	var errs []error
	tasks := snap.Tasks()
	victims := oom.Predict(tasks, d, snap.GroupFlag(&errs))
	verdict := oom.Judge(victims, tasks, d)
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(s.ErrOut, "podwarden: warning: some memory.oom.group flags could not be read, group kills may be missing: %v\n", err)
	}
	shown := victims
	if f.n > 0 && len(shown) > f.n {
		shown = shown[:f.n]
	}
	if f.output == "json" {
		return writeVictimsJSON(s.Out, snap, shown, verdict, d)
	}
	return writeVictimsTable(s.Out, snap, shown, len(victims), verdict)
}

// maxMembersShown bounds the group members listed per victim in the table;
// -o json lists them all.
const maxMembersShown = 5

func writeVictimsTable(w io.Writer, snap *snapshot.Snapshot, shown []oom.Victim, total int, v oom.Verdict) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RANK\tPID\tCOMM\tPOINTS\tOOM_SCORE\tADJ\tRSS\tPOD\tCGROUP")
	for _, vic := range shown {
		p, _ := snap.Lookup(vic.Task.PID)
		fmt.Fprintf(tw, "%d\t%d\t%s\t%d\t%d\t%+d\t%s\t%s\t%s\n", vic.Rank, vic.Task.PID, vic.Task.Comm, vic.Points,
			p.OOMScore, vic.Task.Adj, oom.HumanBytes(p.RSS()), Dash(vic.Task.Pod), vic.Task.Cgroup)
		members := slices.Clone(vic.Members)
		// The biggest members first: they are why the group kill matters.
		slices.SortStableFunc(members, func(a, b oom.Task) int { return cmp.Compare(b.Pages(), a.Pages()) })
		for i, m := range members {
			if i == maxMembersShown && len(members) > maxMembersShown+1 {
				fmt.Fprintf(tw, "\t+%d more\t(group)\t\t\t\t\t\t%s\n", len(members)-i, vic.GroupCgroup)
				break
			}
			mp, _ := snap.Lookup(m.PID)
			fmt.Fprintf(tw, "\t+%d\t%s\t(group)\t%d\t%+d\t%s\t%s\t%s\n", m.PID, m.Comm, mp.OOMScore, m.Adj,
				oom.HumanBytes(mp.RSS()), Dash(m.Pod), m.Cgroup)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(shown) < total {
		fmt.Fprintf(w, "... %d more victims (use -n 0 to show all)\n", total-len(shown))
	}
	prefix := "verdict: "
	if v.Problem {
		prefix = "PROBLEM: "
	}
	_, err := fmt.Fprintf(w, "\n%s%s\n", prefix, v.Text)
	return err
}

// victimRow is the JSON shape of one predicted kill; its keys are a public
// interface.
type victimRow struct {
	Rank        int         `json:"rank"`
	PID         int         `json:"pid"`
	Comm        string      `json:"comm"`
	Points      int64       `json:"points"`
	OOMScore    int         `json:"oom_score"`
	OOMScoreAdj int         `json:"oom_score_adj"`
	RSSBytes    uint64      `json:"rss_bytes"`
	Cgroup      string      `json:"cgroup"`
	PodUID      string      `json:"pod_uid"`
	ContainerID string      `json:"container_id"`
	GroupCgroup string      `json:"group_cgroup,omitempty"`
	Members     []victimRow `json:"members,omitempty"`
}

type victimsDoc struct {
	Domain     string      `json:"domain"`
	TotalPages uint64      `json:"total_pages"`
	Victims    []victimRow `json:"victims"`
	Verdict    oom.Verdict `json:"verdict"`
}

func writeVictimsJSON(w io.Writer, snap *snapshot.Snapshot, shown []oom.Victim, v oom.Verdict, d oom.Domain) error {
	row := func(t oom.Task, rank int, points int64) victimRow {
		p, _ := snap.Lookup(t.PID)
		return victimRow{Rank: rank, PID: t.PID, Comm: t.Comm, Points: points, OOMScore: p.OOMScore,
			OOMScoreAdj: t.Adj, RSSBytes: p.RSS(), Cgroup: t.Cgroup, PodUID: t.Pod, ContainerID: p.Owner.ContainerID}
	}
	doc := victimsDoc{Domain: "node", TotalPages: d.TotalPages, Victims: []victimRow{}, Verdict: v}
	if !d.Node() {
		doc.Domain = d.Cgroup
	}
	for _, vic := range shown {
		r := row(vic.Task, vic.Rank, vic.Points)
		r.GroupCgroup = vic.GroupCgroup
		for _, m := range vic.Members {
			mr := row(m, vic.Rank, 0)
			mr.Points, _ = oom.Badness(m, d.TotalPages)
			r.Members = append(r.Members, mr)
		}
		doc.Victims = append(doc.Victims, r)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
