// Command pwload is the workload of the qemu guest's pressure scenarios
// (internal/vmtest, docs/vmtest.md): memory hogs that grow at a set rate,
// page-cache readers, idle servers, a kubelet-like heartbeat that records
// its longest gap, and the monitor that times pressure onset and deaths.
//
// It is built static and put on the guest's virtio disk under the names
// the scenarios give their processes (the kernel takes a process's name
// from the file it executes), so its pages can be evicted like those of a
// real node's binaries. The monitor runs from the initramfs instead, whose
// pages never are, so it keeps time while the node thrashes.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The main goroutine stays on the main thread, whose name is the
// process's comm (what /proc/PID/stat, ps and the kernel's OOM report
// show): PR_SET_NAME (hog -comm) names only the calling thread.
func init() { runtime.LockOSThread() }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: pwload hog|read|idle|heartbeat|monitor|spawn [flags]")
		os.Exit(2)
	}
	cmds := map[string]func([]string) error{
		"hog": hog, "read": read, "idle": idle, "heartbeat": heartbeat, "monitor": monitor, "spawn": spawn,
	}
	f, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "pwload: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := f(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "pwload %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// nowMS is CLOCK_BOOTTIME in milliseconds: the clock /proc/uptime shows,
// which the guest's shell uses for its own stamps.
func nowMS() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return ts.Sec*1000 + ts.Nsec/1e6
}

// appendFile writes n bytes to the end of name: on a tmpfs, shmem that
// stays charged until the file goes, whatever process ends.
func appendFile(name string, n int, seed byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i>>12)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// alloc maps n bytes of anonymous memory and writes every page, so each is
// really charged (no zero page, no lazy allocation).
func alloc(n int, seed byte) error {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return err
	}
	for i := 0; i < n; i += 4096 {
		b[i] = seed + byte(i>>12)
	}
	return nil
}

func memAvailable() (avail, total uint64) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "MemTotal":
			total = n
		case "MemAvailable":
			avail = n
		}
	}
	return avail, total
}

// hog grows anonymous memory at -rate MiB/s (0: as fast as it can) in
// -chunk pieces, after reading a line from -go (a FIFO) if given. It stops
// growing at -max MiB or once MemAvailable is below -until-avail percent,
// and then holds. SIGINT and SIGTERM are written to -mark; -on-int and
// -on-term say whether it then dies of the signal or carries on (a busy
// notebook cell does not notice SIGINT until the C call returns).
func hog(args []string) error {
	fl := flag.NewFlagSet("hog", flag.ContinueOnError)
	rate := fl.Float64("rate", 0, "MiB/s, 0 for as fast as possible")
	chunk := fl.Int("chunk", 1, "MiB per allocation")
	maxMiB := fl.Int("max", 0, "stop growing at this size (MiB), 0 for never")
	until := fl.Float64("until-avail", 0, "stop growing once MemAvailable is below this percent of MemTotal")
	onInt := fl.String("on-int", "die", "die or ignore")
	onTerm := fl.String("on-term", "die", "die or ignore")
	mark := fl.String("mark", "", "file to append received signals and 'held' to")
	goFifo := fl.String("go", "", "FIFO to read one line from before growing")
	file := fl.String("file", "", "grow this file (on a tmpfs: shmem, charged to the cgroup, never to the process) instead of anonymous memory")
	comm := fl.String("comm", "", "rename the process (prctl PR_SET_NAME: its comm) before anything else")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *comm != "" {
		if err := setComm(*comm); err != nil {
			return err
		}
	}
	note := func(s string) {
		if *mark == "" {
			return
		}
		if f, err := os.OpenFile(*mark, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
			fmt.Fprintf(f, "%s %d\n", s, nowMS())
			f.Close()
		}
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		for s := range sigs {
			sig := s.(syscall.Signal)
			name := map[syscall.Signal]string{syscall.SIGINT: "SIGINT", syscall.SIGTERM: "SIGTERM"}[sig]
			note(name)
			die := sig == syscall.SIGINT && *onInt == "die" || sig == syscall.SIGTERM && *onTerm == "die"
			if die {
				// Exit as a shell reports a death by this signal. (Not
				// signal.Reset and a re-raise: a background job of a
				// script starts with SIGINT ignored, and Reset would
				// restore that.)
				os.Exit(128 + int(sig))
			}
		}
	}()
	if err := waitGo(*goFifo); err != nil {
		return err
	}
	start := time.Now()
	step := *chunk << 20
	grown := 0
	for i := 0; ; i++ {
		if *maxMiB > 0 && grown >= *maxMiB<<20 {
			break
		}
		if *until > 0 {
			if a, t := memAvailable(); t > 0 && float64(a) < float64(t)**until/100 {
				break
			}
		}
		grow := func() error { return alloc(step, byte(i)) }
		if *file != "" {
			grow = func() error { return appendFile(*file, step, byte(i)) }
		}
		if err := grow(); err != nil {
			return fmt.Errorf("after %d MiB: %w", grown>>20, err)
		}
		grown += step
		if grown%(64<<20) == 0 {
			note(fmt.Sprintf("grown %d", grown>>20))
		}
		if *rate > 0 {
			due := start.Add(time.Duration(float64(grown>>20) / *rate * float64(time.Second)))
			time.Sleep(time.Until(due))
		}
	}
	note("held")
	select {}
}

// waitGo reads one line from the FIFO fifo (none: returns at once): the
// scenario's signal to start, once the tool has seen every process.
func waitGo(fifo string) error {
	if fifo == "" {
		return nil
	}
	f, err := os.Open(fifo)
	if err != nil {
		return fmt.Errorf("waiting on %s: %w", fifo, err)
	}
	defer f.Close()
	bufio.NewReader(f).ReadString('\n')
	return nil
}

// setComm renames the process as prctl(PR_SET_NAME) does: any process
// may call itself what it likes (issue 19: a hog named jupyter-lab).
func setComm(name string) error {
	b, err := unix.BytePtrFromString(name)
	if err != nil {
		return fmt.Errorf("comm %q: %w", name, err)
	}
	if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(b)), 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_NAME %q: %w", name, err)
	}
	return nil
}

// read reads every file under -dir, over and over: page cache that is
// read again after the kernel dropped it (refaults), as a data loader
// does.
func read(args []string) error {
	fl := flag.NewFlagSet("read", flag.ContinueOnError)
	dir := fl.String("dir", "", "directory to read")
	goFifo := fl.String("go", "", "FIFO to read one line from before reading")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if err := waitGo(*goFifo); err != nil {
		return err
	}
	var files []string
	filepath.Walk(*dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) == 0 {
		return fmt.Errorf("no files under %s", *dir)
	}
	buf := make([]byte, 256<<10)
	for {
		for _, p := range files {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf)
			f.Close()
			if err != nil {
				return err
			}
		}
	}
}

// spawn is a fork storm, a make -j of fat compilers: after reading a line
// from -go, it starts -n children (-child, run as "hog -max MIB -rate 0"),
// one every -every, and waits for them, reaping each as it exits.
func spawn(args []string) error {
	fl := flag.NewFlagSet("spawn", flag.ContinueOnError)
	n := fl.Int("n", 60, "children to start")
	every := fl.Duration("every", 330*time.Millisecond, "between two children")
	child := fl.String("child", "", "the child's binary")
	mib := fl.Int("mib", 40, "each child's size")
	goFifo := fl.String("go", "", "FIFO to read one line from before spawning")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if err := waitGo(*goFifo); err != nil {
		return err
	}
	var procs []*os.Process
	for range *n {
		p, err := os.StartProcess(*child, []string{*child, "hog", "-max", strconv.Itoa(*mib), "-rate", "0"},
			&os.ProcAttr{Files: []*os.File{nil, os.Stdout, os.Stderr}})
		if err != nil {
			return err
		}
		procs = append(procs, p)
		time.Sleep(*every)
	}
	for _, p := range procs {
		p.Wait()
	}
	select {}
}

// idle holds -rss MiB and wakes every second to touch a page of it, as a
// server between requests.
func idle(args []string) error {
	fl := flag.NewFlagSet("idle", flag.ContinueOnError)
	rss := fl.Int("rss", 0, "MiB to hold")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *rss > 0 {
		if err := alloc(*rss<<20, 7); err != nil {
			return err
		}
	}
	for {
		time.Sleep(time.Second)
	}
}

// heartbeat beats every -every and keeps, in -out (rewritten in place at
// every beat), the number of beats and the longest gap between two, with
// when it ended: what kubelet's node status heartbeat would have missed.
// Every gap longer than -report is appended to -gaps as "LEN_MS END_MS",
// so a scenario can take the longest after a moment of its choosing.
func heartbeat(args []string) error {
	fl := flag.NewFlagSet("heartbeat", flag.ContinueOnError)
	every := fl.Duration("every", 100*time.Millisecond, "beat period")
	out := fl.String("out", "", "status file")
	gapsFile := fl.String("gaps", "", "file to append long gaps to")
	report := fl.Duration("report", 200*time.Millisecond, "gaps longer than this are appended to -gaps")
	if err := fl.Parse(args); err != nil {
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	var gaps *os.File
	if *gapsFile != "" {
		if gaps, err = os.OpenFile(*gapsFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
			return err
		}
	}
	last := nowMS()
	var beats, maxGap, maxAt int64
	for {
		time.Sleep(*every)
		now := nowMS()
		beats++
		gap := now - last
		if gap > maxGap {
			maxGap, maxAt = gap, now
		}
		if gaps != nil && gap > report.Milliseconds() {
			fmt.Fprintf(gaps, "%d %d\n", gap, now)
		}
		last = now
		line := fmt.Sprintf("beats=%d maxgap_ms=%d maxgap_end_ms=%d last_ms=%d\n", beats, maxGap, maxAt, now)
		f.WriteAt([]byte(fmt.Sprintf("%-100s", strings.TrimSuffix(line, "\n"))+"\n"), 0)
	}
}

// monitor samples every -period: the node's PSI memory stall and
// MemAvailable, and whether each watched process (-watch name=pid,...) is
// still alive. It appends to -out, as they happen: "low MS" (the first
// moment MemAvailable was below -low percent), "onset MS" (the first moment
// tasks stalled on memory -onset of the preceding second), "dead NAME PID
// MS" and, when stopped with SIGTERM, "minavail_kb N".
func monitor(args []string) error {
	fl := flag.NewFlagSet("monitor", flag.ContinueOnError)
	out := fl.String("out", "", "events file")
	watch := fl.String("watch", "", "name=pid,... to watch")
	period := fl.Duration("period", 50*time.Millisecond, "sampling period")
	onset := fl.Float64("onset", 10, "stall percent over one second that counts as pressure")
	low := fl.Float64("low", 20, "MemAvailable percent below which memory counts as short")
	if err := fl.Parse(args); err != nil {
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	emit := func(format string, a ...any) {
		fmt.Fprintf(f, format+"\n", a...)
	}
	type proc struct {
		name string
		pid  int
		dead bool
	}
	var procs []*proc
	for _, w := range strings.Split(*watch, ",") {
		n, p, ok := strings.Cut(w, "=")
		if pid, err := strconv.Atoi(p); ok && err == nil {
			procs = append(procs, &proc{name: n, pid: pid})
		}
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	type psi struct {
		at    int64
		total uint64
	}
	var hist []psi
	sawOnset, sawLow := false, false
	minAvail := uint64(1 << 62)
	tk := time.NewTicker(*period)
	defer tk.Stop()
	for {
		select {
		case <-stop:
			emit("minavail_kb %d", minAvail)
			return f.Close()
		case <-tk.C:
		}
		now := nowMS()
		a, total := memAvailable()
		if a > 0 && a < minAvail {
			minAvail = a
		}
		if !sawLow && total > 0 && float64(a) < float64(total)**low/100 {
			sawLow = true
			emit("low %d", now)
		}
		if t, ok := someTotal(); ok {
			hist = append(hist, psi{now, t})
			for len(hist) > 1 && now-hist[1].at >= 1000 {
				hist = hist[1:]
			}
			if h := hist[0]; !sawOnset && now-h.at >= 900 {
				if float64(t-h.total)/1000 >= *onset*float64(now-h.at)/100 {
					sawOnset = true
					emit("onset %d", now)
				}
			}
		}
		for _, p := range procs {
			if !p.dead && !alive(p.pid) {
				p.dead = true
				emit("dead %s %d %d", p.name, p.pid, now)
			}
		}
	}
}

func someTotal() (uint64, bool) {
	b, err := os.ReadFile("/proc/pressure/memory")
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	_, v, ok := strings.Cut(line, "total=")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
	return n, err == nil
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, os.ErrNotExist) || err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && len(b) > i+2 && b[i+2] != 'Z' && b[i+2] != 'X'
}
