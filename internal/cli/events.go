package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"podwarden/internal/kmsg"
	"podwarden/internal/oomreport"
)

type eventsFlags struct {
	kmsg     bool
	file     string
	follow   bool
	since    time.Duration
	output   string
	kmsgPath string
	pods     *podFlags
	// idle is how long a follower waits after a kill line before it emits
	// the report, since group-kill and reaper lines may still come.
	idle time.Duration
}

func newEventsCmd(s Streams, pods *podSource) *cobra.Command {
	f := &eventsFlags{idle: 2 * time.Second}
	cmd := &cobra.Command{
		Use:   "events [-]",
		Short: "Show kernel OOM kills as structured, pod-attributed events",
		Long: `Read the kernel log (/dev/kmsg, or a dmesg / dmesg -T / journalctl -k
short-precise or json dump from a file or stdin) and print one event per OOM
killer invocation: who asked for memory, which limit was hit, who was killed,
which pod and container they belonged to, and a diagnosis.`,
		Example: `  podwarden events --kmsg --follow
  dmesg | podwarden events -
  podwarden events --file node.log -o json`,
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
	cmd.Flags().StringVar(&f.file, "file", "", "read a saved kernel log (- for stdin)")
	cmd.Flags().BoolVarP(&f.follow, "follow", "f", false, "keep reading /dev/kmsg for new OOMs")
	cmd.Flags().DurationVar(&f.since, "since", 0, "only OOMs newer than this (e.g. 1h)")
	cmd.Flags().StringVarP(&f.output, "output", "o", "text", "output format: text or json")
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
	if f.kmsg && f.file != "" {
		return errors.New("--kmsg and --file are exclusive")
	}
	if f.follow && f.file != "" {
		return errors.New("--follow works with --kmsg only")
	}
	// Buffered: a write(2) per report was a tenth of a file's parse. A
	// follower flushes each batch so events show up when they happen.
	out := bufio.NewWriterSize(s.Out, 64<<10)
	defer func() { err = errors.Join(err, flush(out)) }()
	if f.file != "" {
		var r io.Reader = s.In
		if f.file != "-" {
			fh, err := os.Open(f.file)
			if err != nil {
				return fmt.Errorf("opening kernel log: %w", err)
			}
			defer fh.Close()
			r = fh
		}
		return pipeFile(ctx, kmsg.NewDecoder(r, nil), eventWriter(ctx, out, f, 0))
	}
	dev, err := kmsg.OpenDevice(f.kmsgPath, false, f.follow)
	if err != nil {
		return err
	}
	defer dev.Close()
	return followDevice(ctx, dev, f, eventWriter(ctx, out, f, readUptime()), out)
}

// eventWriter formats reports that pass --since into out. uptime is the
// boot-relative now for /dev/kmsg, zero for files.
func eventWriter(ctx context.Context, out io.Writer, f *eventsFlags, uptime time.Duration) reportWriter {
	keep := func(r *oomreport.Report) bool {
		if f.since <= 0 {
			return true
		}
		if !r.Time.IsZero() {
			return time.Since(r.Time) <= f.since
		}
		// Only kmsg gives a boot-relative clock we can compare with.
		if uptime > 0 {
			return uptime-time.Duration(r.Monotonic*float64(time.Second)) <= f.since
		}
		return true
	}
	var buf []byte
	podName := namer(ctx, f.pods.resolver())
	return func(r *oomreport.Report) error {
		if !keep(r) {
			return nil
		}
		var err error
		if buf, err = appendEvent(buf[:0], f.output, r, podName); err != nil {
			return err
		}
		if _, err := out.Write(buf); err != nil {
			return fmt.Errorf("writing event: %w", err)
		}
		return nil
	}
}

// followDevice reads /dev/kmsg record by record; with --follow a report
// is written once no record came for f.idle after its kill line.
func followDevice(ctx context.Context, dev *kmsg.Device, f *eventsFlags, write reportWriter, out *bufio.Writer) error {
	idle := time.Duration(0)
	if f.follow {
		idle = f.idle
	}
	return oomreport.Follow(ctx, dev.Next, idle, func(reps []oomreport.Report) error {
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

// appendEvent appends one event in format: a JSON line, or a paragraph
// naming pods with podName.
func appendEvent(b []byte, format string, r *oomreport.Report, podName func(uid string) string) ([]byte, error) {
	if format == "json" {
		b, err := r.AppendJSON(b)
		if err != nil {
			return b, fmt.Errorf("encoding event: %w", err)
		}
		return append(b, '\n'), nil
	}
	var sb strings.Builder
	when := fmt.Sprintf("[%.6f]", r.Monotonic)
	if !r.Time.IsZero() {
		when = r.Time.Format(time.RFC3339)
	}
	fmt.Fprintf(&sb, "%s %s OOM", when, r.Kind)
	if r.Invoker.Comm != "" {
		fmt.Fprintf(&sb, " invoked by %s (pid %d, adj %d, %s order %d)", r.Invoker.Comm, r.Invoker.PID, r.Invoker.OOMScoreAdj, r.Invoker.GFPMask, r.Invoker.Order)
	}
	if r.Kind == "cgroup" {
		fmt.Fprintf(&sb, " in %s", r.OOMMemcg)
	}
	if r.PodUID != "" {
		fmt.Fprintf(&sb, " (pod %s container %.12s)", podName(r.PodUID), r.ContainerID)
	}
	sb.WriteString(".")
	for _, v := range r.Victims {
		fmt.Fprintf(&sb, " Killed %s (pid %d, anon %d kB, adj %d", v.Comm, v.PID, v.AnonRSSKB, v.OOMScoreAdj)
		if v.PodUID != "" {
			fmt.Fprintf(&sb, ", pod %s", podName(v.PodUID))
		} else if v.Cgroup != "" {
			fmt.Fprintf(&sb, ", %s", v.Cgroup)
		}
		sb.WriteString(").")
	}
	fmt.Fprintf(&sb, " Diagnosis: %s.", r.Diagnosis.Summary)
	if r.Incomplete {
		fmt.Fprintf(&sb, " Incomplete: missing %s.", strings.Join(r.Missing, ", "))
	}
	return append(append(b, sb.String()...), "\n\n"...), nil
}
