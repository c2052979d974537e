package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"podwarden/internal/cgroup"
	"podwarden/internal/kmsg"
	"podwarden/internal/oom"
	"podwarden/internal/oomreport"
	"podwarden/internal/termsafe"
)

// eventWriter is the last stage of `podwarden events`: it drops reports
// seen twice and those older than --since, formats the rest, and keeps
// count of what it had to say about them on stderr.
type eventWriter struct {
	out    io.Writer
	f      *eventsFlags
	uptime time.Duration // boot-relative now for /dev/kmsg, 0 for files
	dedup  *oomreport.Dedup
	pods   func(uid string) (namespace, name string, ok bool)
	buf    []byte

	printed, older int
	// repeats are the first reports dropped as seen before, nRepeats
	// counts them all.
	repeats  [][2]int // line, line of the first
	nRepeats int
	// untimed counts reports --since could not be applied to; yearless
	// those whose year had to be assumed.
	untimed, yearless int
}

// maxNotes bounds the repeats listed one by one.
const maxNotes = 8

func newEventWriter(ctx context.Context, out io.Writer, f *eventsFlags, uptime time.Duration, dedup *oomreport.Dedup) *eventWriter {
	res := f.pods.resolver()
	pods := func(uid string) (string, string, bool) {
		p, ok := res.Lookup(ctx, uid)
		return p.Namespace, p.Name, ok
	}
	return &eventWriter{out: out, f: f, uptime: uptime, dedup: dedup, pods: pods}
}

func (w *eventWriter) write(r *oomreport.Report) error {
	if w.dedup != nil {
		if first, dup := w.dedup.Repeat(r); dup {
			if w.nRepeats++; len(w.repeats) < maxNotes {
				w.repeats = append(w.repeats, [2]int{r.Line, first})
			}
			return nil
		}
	}
	if !w.keep(r) {
		w.older++
		return nil
	}
	r.NamePods(w.pods)
	var err error
	if w.buf, err = appendEvent(w.buf[:0], w.f.output, r); err != nil {
		return err
	}
	if _, err := w.out.Write(w.buf); err != nil {
		return fmt.Errorf("writing event: %w", err)
	}
	w.printed++
	return nil
}

// keep applies --since where the log tells when the report was printed:
// wall-clock time (dmesg -T, syslog with a year, the journal), a syslog
// date without a year (read as the latest such date, and said so), or
// for /dev/kmsg the time since boot against /proc/uptime. Otherwise the
// report is kept and counted, to be said on stderr.
func (w *eventWriter) keep(r *oomreport.Report) bool {
	if w.f.since <= 0 {
		return true
	}
	switch {
	case !r.Time.IsZero():
		return w.f.now.Sub(r.Time) <= w.f.since
	case r.Stamp != "":
		if t, ok := kmsg.YearlessTime(r.Stamp, w.f.now, time.Local); ok {
			w.yearless++
			return w.f.now.Sub(t) <= w.f.since
		}
	case w.uptime > 0:
		return w.uptime-time.Duration(r.Monotonic*float64(time.Second)) <= w.f.since
	}
	w.untimed++
	return true
}

// notes says on errOut what the run dropped, assumed or did not find in
// name, of which n units ("line", "record") were read.
func (w *eventWriter) notes(errOut io.Writer, name string, n int, unit string) {
	units := plural(n, unit, unit+"s")
	for _, r := range w.repeats {
		fmt.Fprintf(errOut, "podwarden: %s line %d: the same kill as the report at line %d (the log pasted twice?); printed once\n", name, r[0], r[1])
	}
	if n := w.nRepeats - len(w.repeats); n > 0 {
		fmt.Fprintf(errOut, "podwarden: %s: %d more reports repeated earlier ones; printed once\n", name, n)
	}
	if w.yearless > 0 {
		fmt.Fprintf(errOut, "podwarden: --since %v: %s dates %d %s without a year; each was read as the latest such date before now\n",
			w.f.since, name, w.yearless, plural(w.yearless, "report", "reports"))
	}
	if w.untimed > 0 {
		fmt.Fprintf(errOut, "podwarden: --since %v not applied to %d %s in %s: the log gives only time since boot (or a time it cannot read), not when that was; printed anyway\n",
			w.f.since, w.untimed, plural(w.untimed, "report", "reports"), name)
	}
	switch {
	case w.printed == 0 && w.older > 0:
		fmt.Fprintf(errOut, "podwarden: no OOM reports in %s newer than %v (%d older; %d %s read)\n", name, w.f.since, w.older, n, units)
	case w.printed == 0 && w.nRepeats == 0:
		fmt.Fprintf(errOut, "podwarden: no OOM reports in %s (%d %s read)\n", name, n, units)
	}
}

// Schema of `events -o json` (docs/schemas/events.schema.json): each
// line is one document, so each carries them.
const (
	eventAPIVersion = apiVersion
	eventKind       = "OOMEvent"
)

// appendEvent appends one event in format: a JSON line, or a paragraph
// naming pods by the names r.NamePods gave them.
func appendEvent(b []byte, format string, r *oomreport.Report) ([]byte, error) {
	if format == "json" {
		start := len(b)
		b = append(b, `{"apiVersion":"`+eventAPIVersion+`","kind":"`+eventKind+`",`...)
		body := len(b)
		b, err := r.AppendJSON(b)
		if err != nil {
			return b, fmt.Errorf("encoding event: %w", err)
		}
		// The report's own opening brace goes: its fields join the
		// envelope's.
		b = append(b[:body], b[body+1:]...)
		// The true strings, with what JSON leaves raw but a terminal acts
		// on (C1, bidi) as \u escapes.
		if line := termsafe.JSON(b[start:]); len(line) != len(b)-start {
			b = append(b[:start], line...)
		}
		return append(b, '\n'), nil
	}
	// Every string below but the fixed words came from the log, whose
	// /dev/kmsg \xNN escapes kmsg decoded to the true bytes: each goes
	// through termsafe, as dmesg would print it.
	esc := termsafe.Escape
	podName := func(uid, ns, name string) string {
		if name != "" {
			return esc(ns + "/" + name)
		}
		return esc(uid)
	}
	var sb strings.Builder
	switch {
	case !r.Time.IsZero():
		sb.WriteString(r.Time.Format(time.RFC3339))
	case r.Stamp != "":
		sb.WriteString(esc(r.Stamp))
	case r.Monotonic != 0:
		fmt.Fprintf(&sb, "[%.6f]", r.Monotonic)
	}
	if r.Line > 0 {
		fmt.Fprintf(&sb, " line %d:", r.Line)
	}
	if r.Killer != oomreport.KillerKernel {
		fmt.Fprintf(&sb, " %s kill", esc(r.Killer))
	} else {
		fmt.Fprintf(&sb, " %s OOM", esc(r.Kind.String()))
	}
	if inv := r.Invoker; inv.Comm != "" {
		fmt.Fprintf(&sb, " invoked by %s (", esc(inv.Comm))
		if inv.PID != 0 {
			fmt.Fprintf(&sb, "pid %d, ", inv.PID)
		}
		if inv.OOMScoreAdj != nil {
			fmt.Fprintf(&sb, "adj %d, ", *inv.OOMScoreAdj)
		}
		if inv.GFPMask != "" {
			fmt.Fprintf(&sb, "%s ", esc(inv.GFPMask))
		}
		if inv.Order != nil {
			fmt.Fprintf(&sb, "order %d", *inv.Order)
		}
		sb.WriteString(")")
	}
	if r.Kind == "cgroup" && r.OOMMemcg != "" {
		fmt.Fprintf(&sb, " in %s", esc(r.OOMMemcg))
	}
	hasPod := r.PodUID != "" || r.PodName != ""
	switch pod := podName(r.PodUID, r.PodNamespace, r.PodName); {
	case hasPod && r.ContainerID != "":
		fmt.Fprintf(&sb, " (pod %s container %s)", pod, esc(cgroup.ShortID(r.ContainerID)))
	case hasPod:
		fmt.Fprintf(&sb, " (pod %s)", pod)
	case r.ContainerID != "":
		fmt.Fprintf(&sb, " (container %s)", esc(cgroup.ShortID(r.ContainerID)))
	}
	sb.WriteString(".")
	for i := range r.Victims {
		v := &r.Victims[i]
		fmt.Fprintf(&sb, " Killed %s (pid %d", esc(v.Comm), v.PID)
		if r.Sized() {
			fmt.Fprintf(&sb, ", anon %s", oom.HumanBytes(uint64(max(v.AnonRSSKB, 0))*1024))
			if adj, ok := v.Adj(); ok {
				fmt.Fprintf(&sb, ", adj %d", adj)
			}
		} else if kb, ok := v.RSS(); ok {
			fmt.Fprintf(&sb, ", rss %s", oom.HumanBytes(uint64(max(kb, 0))*1024))
		}
		switch {
		case v.PodUID != "" || v.PodName != "":
			fmt.Fprintf(&sb, ", pod %s", podName(v.PodUID, v.PodNamespace, v.PodName))
		case v.ContainerID != "":
			fmt.Fprintf(&sb, ", container %s", esc(cgroup.ShortID(v.ContainerID)))
		case v.Cgroup != "":
			fmt.Fprintf(&sb, ", %s", esc(v.Cgroup))
		}
		sb.WriteString(").")
	}
	fmt.Fprintf(&sb, " Diagnosis: %s.", esc(r.Diagnosis.Summary))
	if r.Incomplete {
		fmt.Fprintf(&sb, " Incomplete: missing %s.", esc(strings.Join(r.Missing, ", ")))
	}
	return append(append(b, strings.TrimPrefix(sb.String(), " ")...), "\n\n"...), nil
}
