package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// journalMatches select what --journal reads: the kernel's messages and
// those of the node's other killers (journalctl ORs the groups that "+"
// separates).
var journalMatches = []string{
	"_TRANSPORT=kernel",
	"+", "_SYSTEMD_UNIT=kubelet.service",
	"+", "_SYSTEMD_UNIT=systemd-oomd.service",
	"+", "_SYSTEMD_UNIT=earlyoom.service", "+", "SYSLOG_IDENTIFIER=earlyoom",
	"+", "SYSLOG_IDENTIFIER=podwarden-agent",
}

// maxJournalStderr bounds what of journalctl's stderr an error quotes.
const maxJournalStderr = 4 << 10

// eventsFromJournal runs journalctl -o json and reads its entries as a
// saved log: the JSON carrier tells the kernel's entries from the other
// programs'.
func eventsFromJournal(ctx context.Context, errOut io.Writer, out *bufio.Writer, f *eventsFlags) error {
	prog := f.journalctl
	if prog == "" {
		prog = "journalctl"
	}
	bin, err := exec.LookPath(prog)
	if err != nil {
		return fmt.Errorf("--journal runs journalctl -o json: %w (on a node without systemd's journal, use --kmsg or --file)", err)
	}
	args := []string{"-o", "json", "--no-pager", "-q"}
	if f.since > 0 {
		args = append(args, "--since", f.now.Add(-f.since).Local().Format("2006-01-02 15:04:05"))
	}
	args = append(args, journalMatches...)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &capped{buf: &stderr, max: maxJournalStderr}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("running %s: %w", bin, err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", bin, err)
	}
	rerr := eventsFromReader(ctx, stdout, "the journal", "record", errOut, out, f)
	var exit *ExitError
	if rerr != nil && !errors.As(rerr, &exit) {
		// Stop journalctl, which would block writing what is not read.
		cancel()
		_ = cmd.Wait()
		return rerr
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("running %s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return rerr
}

// capped keeps the first max bytes written to it and drops the rest.
type capped struct {
	buf *bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
