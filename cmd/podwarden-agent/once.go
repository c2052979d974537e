package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"podwarden/internal/agent"
	"podwarden/internal/cli"
	"podwarden/internal/termsafe"
)

// onceResult is what `agent --once` prints, in every format
// (docs/schemas/agent-once.schema.json). Its JSON keys, and those of
// everything in it, are snake_case, but for Kubernetes' apiVersion and kind.
type onceResult struct {
	cli.TypeMeta
	DryRun bool `json:"dry_run"`
	// Containers are every container considered, targets or not, with why.
	Containers []agent.Candidate `json:"containers"`
	Targets    []agent.Target    `json:"targets"`
	Changes    []changeRow       `json:"changes"`
}

type changeRow struct {
	agent.Change
	Error string `json:"error,omitempty"`
}

func changeRows(changes []agent.Change) []changeRow {
	rows := make([]changeRow, 0, len(changes))
	for _, c := range changes {
		r := changeRow{Change: c}
		if c.Err != nil {
			r.Error = c.Err.Error()
		}
		rows = append(rows, r)
	}
	return rows
}

// writeOnce prints a one-shot pass: the containers found and why each is
// or is not a target (a summary line, or every one with verbose), then the
// changes made or planned. A failed write makes the command fail.
func writeOnce(out io.Writer, r onceResult, format string, verbose, noHeaders bool) error {
	if r.Containers == nil {
		r.Containers = []agent.Candidate{}
	}
	if r.Targets == nil {
		r.Targets = []agent.Target{}
	}
	failed := 0
	for _, c := range r.Changes {
		if c.Err != nil {
			failed++
		}
	}
	if format == "json" || format == "yaml" {
		r.TypeMeta = cli.Meta("AgentPass")
		if err := cli.WriteStructured(out, format, r); err != nil {
			return err
		}
	} else if err := writeOnceTable(out, r, verbose, noHeaders); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d changes failed", failed, len(r.Changes))
	}
	return nil
}

func writeOnceTable(out io.Writer, r onceResult, verbose, noHeaders bool) error {
	w := cli.NewBufWriter(out)
	header := func(tw io.Writer, h string) {
		if !noHeaders {
			fmt.Fprintln(tw, h)
		}
	}
	// Every cell and the summary hold names a pod or a process chose:
	// dash and termsafe escape them.
	fmt.Fprintln(w, termsafe.Escape(containersSummary(r.Containers, verbose)))
	if verbose && len(r.Containers) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		header(tw, "TARGET\tNAMESPACE\tPOD\tCONTAINER\tCGROUP\tWHY")
		for _, c := range r.Containers {
			target := "no"
			if c.Target {
				target = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", target, dash(c.Namespace), dash(c.Pod), dash(c.Container), dash(c.Cgroup), dash(c.Reason))
		}
		tw.Flush()
	}
	switch {
	case len(r.Changes) == 0 && len(r.Targets) == 0:
		fmt.Fprintln(w, "nothing to change: no target containers")
	case len(r.Changes) == 0:
		fmt.Fprintln(w, "nothing to change: the policy holds")
	default:
		verb := "CHANGED"
		if r.DryRun {
			verb = "WOULD CHANGE"
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		header(tw, verb+"\tTARGET\tFROM\tTO\tPOD\tCONTAINER\tWHY")
		for _, c := range r.Changes {
			why := c.Reason
			if c.Drift {
				why += " (drift)"
			}
			if c.Err != nil {
				why += ": FAILED: " + c.Err.Error()
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", c.Kind, dash(c.What()), c.From, c.To, dash(c.Pod), dash(c.Container), dash(why))
		}
		tw.Flush()
	}
	return w.Flush()
}

// containersSummary is the line that says how many containers were found,
// how many are targets and why the others are not, most common reason
// first.
func containersSummary(cs []agent.Candidate, verbose bool) string {
	if len(cs) == 0 {
		return "no containers found: the runtime lists none, or (with --no-cri) no container cgroup of a kubelet pod is under the cgroup root"
	}
	targets := 0
	why := map[string]int{}
	for _, c := range cs {
		if c.Target {
			targets++
		} else {
			why[c.Reason]++
		}
	}
	s := fmt.Sprintf("%d target containers of %d found", targets, len(cs))
	if len(why) == 0 {
		return s
	}
	reasons := make([]string, 0, len(why))
	for r := range why {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool {
		if why[reasons[i]] != why[reasons[j]] {
			return why[reasons[i]] > why[reasons[j]]
		}
		return reasons[i] < reasons[j]
	})
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		parts[i] = fmt.Sprintf("%d: %s", why[r], r)
	}
	s += "; not targets: " + strings.Join(parts, ", ")
	if !verbose {
		s += " (-v lists every container)"
	}
	return s
}
