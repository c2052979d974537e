package vmtest

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/kmsg-6.1-*.log from this run's k8s guest")

// env is what TestMain found on the machine; the scenario tests read it.
var env struct {
	suite    *Suite
	noVM     string // why the guest scenarios must skip, "" if they can run
	noAgent  string // why the podwarden mode must skip
	parallel bool
	boots    map[Mode]*bootOnce
	load     *hostLoad // the host's load while the guests ran
}

type bootOnce struct {
	once sync.Once
	done chan struct{}
	boot *Boot
	err  error
}

// rows is the summary table TestMain prints after all tests ran.
var rows struct {
	sync.Mutex
	list []row
}

type row struct {
	scenario, mode, killed, survived, latency, verdict string
	reasons                                            []string
}

// reason notes why a run failed, once per kind, for the table.
func (r *row) reason(s string) {
	if !slices.Contains(r.reasons, s) {
		r.reasons = append(r.reasons, s)
	}
}

func (r *row) why() string {
	if len(r.reasons) == 0 {
		return ""
	}
	return "(" + strings.Join(r.reasons, "; ") + ")"
}

func record(r row) {
	rows.Lock()
	defer rows.Unlock()
	rows.list = append(rows.list, r)
}

func TestMain(m *testing.M) {
	flag.Parse()
	t0 := time.Now()
	work, err := os.MkdirTemp("", "podwarden-vmtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmtest:", err)
		os.Exit(1)
	}
	setup(work)
	ctx, stop := context.WithCancel(context.Background())
	env.load = watchHostLoad(ctx, "/proc/loadavg", 2*time.Second)
	code := m.Run()
	stop()
	printTable(os.Stdout, time.Since(t0))
	printPressureTable(os.Stdout)
	saveRuns(filepath.Join(os.TempDir(), "podwarden-vmtest-runs.json"))
	os.RemoveAll(work)
	os.Exit(code)
}

func setup(work string) {
	env.boots = map[Mode]*bootOnce{ModeK8s: {done: make(chan struct{})}, ModePodwarden: {done: make(chan struct{})}}
	mach, err := FindMachine()
	if err != nil {
		env.noVM = err.Error()
	}
	if os.Getenv("PWVM_MEM") != "" {
		fmt.Sscan(os.Getenv("PWVM_MEM"), &mach.MemMiB)
	}
	// The consoles outlive the run (a failed scenario names its file), one
	// directory per run so two runs at once keep their own.
	consoles, err := os.MkdirTemp("", "podwarden-vmtest-consoles-")
	if err != nil {
		consoles = work
	}
	s := &Suite{Machine: mach, Busybox: "/bin/busybox", Plan: Scenarios, WorkDir: work, ConsoleDir: consoles}
	if b := os.Getenv("PWVM_BUSYBOX"); b != "" {
		s.Busybox = b
	}
	if env.noVM == "" {
		if _, err := os.Stat(s.Busybox); err != nil {
			env.noVM = "no static busybox (apt-get install busybox-static): " + err.Error()
		}
	}
	if p := os.Getenv("PWVM_SCENARIOS"); p != "" {
		s.Plan = strings.Split(p, ",")
	}
	env.suite = s
	env.parallel = os.Getenv("PWVM_PARALLEL") != "0"
	s.Podwarden, env.noAgent = findAgent(work)
}

// findAgent returns a static podwarden whose "agent" command exists. Until
// it does, the podwarden mode skips: a mode that cannot run must never
// pass.
func findAgent(work string) (string, string) {
	// Built from this tree every run unless PODWARDEN_BIN names one: a
	// stale binary would test old code.
	bin := os.Getenv("PODWARDEN_BIN")
	if bin == "" {
		bin = filepath.Join(work, "podwarden-static")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		// The DaemonSet's binary, built as the container image builds it.
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "podwarden/cmd/podwarden-agent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Sprintf("agent not built yet: go build ./cmd/podwarden-agent: %v: %s", err, firstLine(string(out)))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, "agent", "--help").CombinedOutput(); err != nil {
		return "", fmt.Sprintf("agent not built yet: %s agent --help: %v: %s", bin, err, firstLine(string(out)))
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		return "", "agent not built yet: " + err.Error()
	}
	return abs, ""
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// bootFor returns the boot of mode, starting it on first use. With
// parallel set, the first request starts every runnable mode at once: two
// single-vCPU TCG guests use both host cores.
func bootFor(t *testing.T, mode Mode) *Boot {
	t.Helper()
	if env.noVM != "" {
		t.Skip("qemu guest unavailable: " + env.noVM)
	}
	if testing.Short() {
		t.Skip("-short: the qemu guests take minutes under TCG")
	}
	if mode == ModePodwarden && env.noAgent != "" {
		t.Skip(env.noAgent)
	}
	start := func(m Mode) {
		b := env.boots[m]
		b.once.Do(func() {
			go func() {
				defer close(b.done)
				ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
				defer cancel()
				b.boot, b.err = env.suite.BootMode(ctx, m)
				if b.boot != nil {
					logBoot(b.boot)
				}
			}()
		})
	}
	start(mode)
	if env.parallel {
		for m := range env.boots {
			if m != ModePodwarden || env.noAgent == "" {
				start(m)
			}
		}
	}
	b := env.boots[mode]
	<-b.done
	if b.boot == nil {
		t.Fatalf("%s guest: %v", mode, b.err)
	}
	if b.err != nil {
		t.Errorf("%s guest: %v (console: %s)", mode, b.err, env.suite.ConsolePath(mode))
	}
	return b.boot
}

func logBoot(b *Boot) {
	fmt.Printf("BOOT mode=%s boot=%s total=%s\n", b.Mode, b.BootTime.Round(100*time.Millisecond), b.Total.Round(100*time.Millisecond))
	names := make([]string, 0, len(b.Runs))
	for n := range b.Runs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Printf("BOOT mode=%s scenario=%s guest-time=%s complete=%v\n", b.Mode, n, b.Runs[n].Duration.Round(10*time.Millisecond), b.Runs[n].Complete)
	}
}

// saveRuns writes every run of every finished boot (processes, checks,
// metrics, raw kernel records, agent log) as JSON, for tools that parse
// the kernel reports after the fact.
func saveRuns(path string) {
	var all []*Run
	for _, b := range env.boots {
		select {
		case <-b.done:
		default:
			continue // never started
		}
		if b.boot == nil {
			continue
		}
		for _, r := range b.boot.Runs {
			all = append(all, r)
		}
	}
	for _, b := range pressure.boots {
		for _, r := range b.Runs {
			all = append(all, r)
		}
	}
	for _, b := range arm64.boots {
		for _, r := range b.Runs {
			all = append(all, r)
		}
	}
	if len(all) == 0 {
		return
	}
	buf, err := json.MarshalIndent(all, "", "  ")
	if err == nil {
		err = os.WriteFile(path, buf, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmtest: saving runs:", err)
		return
	}
	fmt.Println("runs (with raw kernel records) saved to", path)
}

func printTable(w *os.File, total time.Duration) {
	rows.Lock()
	defer rows.Unlock()
	if len(rows.list) == 0 {
		return
	}
	sort.SliceStable(rows.list, func(i, j int) bool {
		if rows.list[i].scenario != rows.list[j].scenario {
			return rows.list[i].scenario < rows.list[j].scenario
		}
		return rows.list[i].mode < rows.list[j].mode
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tname\tmode\tkilled\tsurvived\tprotect-ms\tverdict")
	for _, r := range rows.list {
		fmt.Fprintf(tw, "SCENARIO\t%s\t%s\t%s\t%s\t%s\t%s\n", r.scenario, r.mode, r.killed, r.survived, r.latency, r.verdict)
	}
	tw.Flush()
	fmt.Fprintf(w, "scenario suite total %s\n", total.Round(time.Second))
}
