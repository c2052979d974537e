// Command events-cadvisor is the anchor for bench/events.sh: cadvisor's
// OOM parser (github.com/google/cadvisor/utils/oomparser, the one kubelet
// uses for OOM events) run over the lines of a saved dmesg log.
//
// oomparser only reads /dev/kmsg, through an unexported kmsgparser.Parser
// field. This program puts a Parser that reads the file in that field and
// runs the real OomParser.StreamOoms, so the work measured is cadvisor's:
// its per-line regexps and its channel of messages. The file side does what
// kmsgparser does per record (split off the header, parse the timestamp).
// It lives in its own module so podwarden's go.mod does not gain cadvisor.
//
// Usage: events-cadvisor LOG   (prints the number of OOM instances)
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/euank/go-kmsg-parser/kmsgparser"
	"github.com/google/cadvisor/utils/oomparser"
	"k8s.io/klog/v2"
)

func main() {
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: events-cadvisor LOG")
		os.Exit(2)
	}
	n, err := run(flag.Arg(0))
	if err != nil {
		fmt.Fprintf(os.Stderr, "events-cadvisor: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(n)
}

func run(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("opening log: %w", err)
	}
	defer f.Close()
	// StreamOoms logs an error when its input ends; that is expected here.
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	if err := fs.Parse([]string{"-logtostderr=false", "-stderrthreshold=FATAL"}); err != nil {
		return 0, fmt.Errorf("silencing klog: %w", err)
	}
	klog.SetOutput(io.Discard)

	src := &fileParser{r: f, boot: time.Now()}
	p := &oomparser.OomParser{}
	// OomParser's only field is its kmsgparser.Parser; the size check
	// catches a cadvisor release that changes that.
	if unsafe.Sizeof(*p) != unsafe.Sizeof(kmsgparser.Parser(nil)) {
		return 0, fmt.Errorf("oomparser.OomParser layout changed (%d bytes)", unsafe.Sizeof(*p))
	}
	*(*kmsgparser.Parser)(unsafe.Pointer(p)) = src

	ooms := make(chan *oomparser.OomInstance, 64)
	go func() {
		p.StreamOoms(ooms)
		close(ooms)
	}()
	n := 0
	for range ooms {
		n++
	}
	return n, src.err
}

// fileParser is a kmsgparser.Parser over a dmesg text file.
type fileParser struct {
	r    io.Reader
	boot time.Time
	err  error
}

var _ kmsgparser.Parser = (*fileParser)(nil)

func (p *fileParser) SeekEnd() error              { return nil }
func (p *fileParser) SetLogger(kmsgparser.Logger) {}
func (p *fileParser) Close() error                { return nil }

// Parse sends one message per line on a channel of the size kmsgparser
// uses, with the "[   12.345678] " header cut off and turned into a time.
func (p *fileParser) Parse() <-chan kmsgparser.Message {
	out := make(chan kmsgparser.Message, 1)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(p.r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			msg := kmsgparser.Message{Message: line}
			if strings.HasPrefix(line, "[") {
				if end := strings.IndexByte(line, ']'); end > 0 {
					if sec, err := strconv.ParseFloat(strings.TrimSpace(line[1:end]), 64); err == nil {
						msg.Timestamp = p.boot.Add(time.Duration(sec * float64(time.Second)))
					}
					msg.Message = strings.TrimPrefix(line[end+1:], " ")
				}
			}
			out <- msg
		}
		if err := sc.Err(); err != nil {
			p.err = fmt.Errorf("reading log: %w", err)
		}
	}()
	return out
}
