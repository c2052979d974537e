package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"podwarden/internal/kmsg"
	"podwarden/internal/oomreport"
	"podwarden/internal/termsafe"
)

type eventsFlags struct {
	kmsg     bool
	journal  bool
	file     string
	follow   bool
	since    time.Duration
	output   string
	kmsgPath string
	pods     *podFlags
	// idle is how long a follower waits after a kill line before it emits
	// the report, since group-kill and reaper lines may still come.
	idle time.Duration
	// now is the wall clock --since counts back from (tests set it).
	now time.Time
	// journalctl is the program --journal runs ("journalctl" from $PATH;
	// tests set a path).
	journalctl string
}

// Exit codes of `podwarden events` (docs/events.md).
const (
	// eventsExitUnassembled: lines looked like OOM reports but went into
	// none; the reports that could be assembled were printed.
	eventsExitUnassembled = 2
)

func newEventsCmd(s Streams, pods *podSource) *cobra.Command {
	f := &eventsFlags{idle: 2 * time.Second}
	cmd := &cobra.Command{
		Use:   "events [-]",
		Short: "Explain every kill on a node (kernel OOM, kubelet eviction, systemd-oomd, earlyoom, podwarden) as structured, pod-attributed events",
		Long: `Read the kernel log (/dev/kmsg, or a saved log from a file or stdin) and
print one event per OOM killer invocation: who asked for memory, which limit
was hit, who was killed, which pod and container they belonged to, and a
diagnosis.

The node's other killers are explained the same way, one event per kill,
each naming its killer: the kubelet's evictions, systemd-oomd, earlyoom and
podwarden's own early action, from their lines in a syslog file, a journal
export, a kubelet.log or a container log, or with --journal from the
systemd journal itself (journalctl -o json with the kernel's messages and
those of kubelet.service, systemd-oomd.service, earlyoom and
podwarden-agent).

A saved log may be anything the kernel's messages were carried in, mixed in
one file: dmesg (also -T in any language, -r, -x, with printk caller ids),
/var/log/kern.log or messages, journalctl (short, short-precise, short-iso,
short-monotonic, json), saved /dev/kmsg records, or bare messages, indented,
quoted with "> " or wrapped by a mail client or terminal. A report cut short
still counts when it names its victim: a paste that starts at the task table
or the kill line, or only the "oom-kill:" summary lines of dmesg | grep.

-o json prints JSON Lines: one JSON object per report per line, each with
apiVersion podwarden.dev/v1 and kind OOMEvent (docs/schemas); a value the
log does not give is absent, never 0 or "". Pods are named namespace/name
when --pod-log-dir names them, else by UID.

What it could not use is said on stderr: lines that looked like part of an
OOM report but went into none (with their line numbers and why), lines of
1 MiB or more (skipped), reports seen twice (printed once), and
"no OOM reports in FILE (N lines read)" when there were none.

Exit status: 0 when the input was read (with or without reports), 1 on an
error (bad flags, an unreadable file, a failed write), 2 when lines looked
like OOM reports but could not be assembled (the rest are printed).`,
		Example: `  podwarden events --kmsg --follow
  dmesg | podwarden events -
  journalctl -k -b -1 | podwarden events - --since 2h
  podwarden events --journal --since 24h
  podwarden events --file /var/log/kern.log -o json | jq .victims`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if args[0] != "-" {
					return fmt.Errorf("argument %q: only - (stdin) is accepted; use --file", args[0])
				}
				f.file = "-"
			}
			return runEvents(cmd.Context(), s, f)
		},
	}
	cmd.Flags().BoolVar(&f.kmsg, "kmsg", false, "read /dev/kmsg (the default when no file is given)")
	cmd.Flags().BoolVar(&f.journal, "journal", false, "read the systemd journal (runs journalctl -o json): the kernel's, the kubelet's, systemd-oomd's, earlyoom's and podwarden's messages")
	cmd.Flags().StringVar(&f.file, "file", "", "read a saved kernel log (- for stdin)")
	cmd.Flags().BoolVarP(&f.follow, "follow", "f", false, "keep reading /dev/kmsg for new OOMs")
	cmd.Flags().DurationVar(&f.since, "since", 0, "only OOMs newer than this (e.g. 1h); logs with only time since boot cannot be filtered, which is said on stderr")
	cmd.Flags().StringVarP(&f.output, "output", "o", "text", "output format: text, or json (JSON Lines: one object per report per line)")
	cmd.Flags().StringVar(&f.kmsgPath, "kmsg-path", kmsg.DefaultPath, "path of the kmsg device")
	f.pods = pods.register(cmd.Flags())
	return cmd
}

func runEvents(ctx context.Context, s Streams, f *eventsFlags) (err error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if f.output != "text" && f.output != "json" {
		return fmt.Errorf("--output %q: want text or json", f.output)
	}
	if n := btoi(f.kmsg) + btoi(f.journal) + btoi(f.file != ""); n > 1 {
		return errors.New("--kmsg, --journal and --file are exclusive")
	}
	if f.follow && (f.file != "" || f.journal) {
		return errors.New("--follow works with --kmsg only")
	}
	if f.since < 0 {
		return fmt.Errorf("--since %v: want a positive duration", f.since)
	}
	if f.now.IsZero() {
		f.now = time.Now()
	}
	errOut := s.ErrOut
	if errOut == nil {
		errOut = io.Discard
	}
	// Buffered: a write(2) per report was a tenth of a file's parse. A
	// follower flushes each batch so events show up when they happen.
	out := bufio.NewWriterSize(s.Out, 64<<10)
	defer func() { err = errors.Join(err, flush(out)) }()
	if f.file != "" {
		return eventsFromFile(ctx, s.In, errOut, out, f)
	}
	if f.journal {
		return eventsFromJournal(ctx, errOut, out, f)
	}
	dev, err := kmsg.OpenDevice(f.kmsgPath, false, f.follow)
	if err != nil {
		return err
	}
	defer dev.Close()
	w := newEventWriter(ctx, out, f, readUptime(), nil)
	records := 0
	next := func(ctx context.Context) (kmsg.Record, error) {
		r, err := dev.Next(ctx)
		if err == nil {
			records++
		}
		return r, err
	}
	if err := followDevice(ctx, next, f, w.write, out); err != nil {
		return err
	}
	if !f.follow {
		if err := flush(out); err != nil {
			return err
		}
		w.notes(errOut, f.kmsgPath, records, "record")
	}
	return nil
}

// eventsFromFile decodes a saved log on the file pipeline and says on
// errOut what it could not use.
func eventsFromFile(ctx context.Context, in io.Reader, errOut io.Writer, out *bufio.Writer, f *eventsFlags) error {
	name := termsafe.Escape(f.file)
	r := in
	if f.file == "-" {
		name = "stdin"
	} else {
		fh, err := os.Open(f.file)
		if err != nil {
			return fmt.Errorf("opening kernel log: %w", err)
		}
		defer fh.Close()
		if st, err := fh.Stat(); err == nil && st.IsDir() {
			return fmt.Errorf("reading kernel log %s: is a directory", f.file)
		}
		r = fh
	}
	return eventsFromReader(ctx, r, name, "line", errOut, out, f)
}

// eventsFromReader decodes a saved log (or journalctl's output) from r on
// the file pipeline, other programs' messages included for their kills,
// and says on errOut what it could not use in name, read in units.
func eventsFromReader(ctx context.Context, r io.Reader, name, unit string, errOut io.Writer, out *bufio.Writer, f *eventsFlags) error {
	dec := kmsg.NewDecoder(r, nil)
	dec.KeepPrograms()
	w := newEventWriter(ctx, out, f, 0, &oomreport.Dedup{})
	res, err := pipeFile(ctx, dec, w.write)
	if ferr := flush(out); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	st := dec.Stats()
	for _, l := range st.LongLines {
		fmt.Fprintf(errOut, "podwarden: %s line %d: skipped a line of %d bytes (lines of 1 MiB or more are not kernel messages)\n", name, l.Line, l.Bytes)
	}
	if n := st.Skipped - len(st.LongLines); n > 0 {
		fmt.Fprintf(errOut, "podwarden: %s: skipped %d more such lines\n", name, n)
	}
	w.notes(errOut, name, st.Lines, unit)
	if res.nStrays > 0 {
		fmt.Fprintf(errOut, "podwarden: %s: %d %s looked like part of an OOM report but went into none:\n", name, res.nStrays, plural(res.nStrays, "line", "lines"))
		for _, s := range res.strays {
			fmt.Fprintf(errOut, "  line %d: %s\n      %s\n", s.Line, termsafe.Escape(s.Why), termsafe.Escape(s.Text))
		}
		if n := res.nStrays - len(res.strays); n > 0 {
			fmt.Fprintf(errOut, "  and %d more\n", n)
		}
		return &ExitError{Code: eventsExitUnassembled}
	}
	return nil
}

// followDevice reads /dev/kmsg record by record; with --follow a report
// is written once no record came for f.idle after its kill line.
func followDevice(ctx context.Context, next func(context.Context) (kmsg.Record, error), f *eventsFlags, write reportWriter, out *bufio.Writer) error {
	idle := time.Duration(0)
	if f.follow {
		idle = f.idle
	}
	return oomreport.Follow(ctx, next, idle, func(reps []oomreport.Report) error {
		for i := range reps {
			if err := write(&reps[i]); err != nil {
				return err
			}
		}
		return flush(out)
	})
}

func readUptime() time.Duration {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	var sec float64
	if _, err := fmt.Sscanf(string(b), "%f", &sec); err != nil {
		return 0
	}
	return time.Duration(sec * float64(time.Second))
}

func flush(w *bufio.Writer) error {
	if err := w.Flush(); err != nil {
		return fmt.Errorf("writing events: %w", err)
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
