// Command agent-bench measures podwarden agent's protection latency and
// idle cost on this machine's real cgroup tree: the time from a new target
// container cgroup (with a process in it) appearing to that process running
// at the policy's oom_score_adj, p50/p99 over N containers; then the
// agent's RSS and CPU while it watches M containers and the rest of the
// machine's processes sit idle, side by side with an anchor daemon
// (earlyoom, bench/agent.sh starts it) measured over the same window.
//
// With -soak it instead runs the agent through pid and cgroup churn and
// reports whether its RSS stays flat (soak.go).
//
// Run as root: go run ./bench/agent -n 1000 -idle 200 (bench/agent.sh),
// go run ./bench/agent -soak (bench/soak.sh).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	n := flag.Int("n", 1000, "containers to create for the latency measurement")
	idle := flag.Int("idle", 200, "containers kept for the idle CPU/RSS measurement")
	idleFor := flag.Duration("idle-for", 30*time.Second, "how long to measure idle CPU")
	bin := flag.String("bin", "bin/podwarden", "podwarden binary")
	memRoot := flag.String("memory-root", "/sys/fs/cgroup/memory", "memory controller mount (v1) or the v2 root")
	anchor := flag.Int("anchor-pid", 0, "pid of an anchor daemon to measure over the same idle window (0: none)")
	doSoak := flag.Bool("soak", false, "run the churn soak instead (-procs, -cgroups, -pod-cgroups, -targets)")
	procs := flag.Int("procs", 100000, "soak: processes to fork inside targets")
	cgroups := flag.Int("cgroups", 10000, "soak: cgroups to create and remove inside targets")
	podCgroups := flag.Int("pod-cgroups", 0, "soak: cgroups to create and remove as pods come and go (kubepods/pod<uid>/<container>, each container a target while it lives)")
	targets := flag.Int("targets", 20, "soak: target containers")
	port := flag.Int("port", 19818, "soak: loopback metrics port")
	profDir := flag.String("pprof", "", "soak: save the agent's heap profiles at the start and end of the churn in this directory (needs an agent with --debug-pprof)")
	flag.Parse()
	var err error
	if *doSoak {
		err = soak(soakSize{procs: *procs, cgroups: *cgroups, podCgroups: *podCgroups, targets: *targets}, *bin, *memRoot, *port, *profDir)
	} else {
		err = run(*n, *idle, *idleFor, *bin, *memRoot, *anchor)
	}
	if err != nil {
		log.Fatal(err)
	}
}

func run(n, idle int, idleFor time.Duration, bin, memRoot string, anchor int) error {
	prefix := fmt.Sprintf("/podwarden-bench-%d", os.Getpid())
	base := filepath.Join(memRoot, prefix)
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Kill()
			_ = p.Wait()
		}
		removeTree(base)
	}()
	if err := os.MkdirAll(filepath.Join(base, "kubepods"), 0o755); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	agent := exec.CommandContext(ctx, bin, "agent", "--no-cri", "--cgroup-selector", prefix+"/kubepods/pod*/*",
		"--metrics-addr", "127.0.0.1:19808", "--log-level", "error", "--interval", "10s")
	agent.Stderr = os.Stderr
	if err := agent.Start(); err != nil {
		return fmt.Errorf("start agent: %w", err)
	}
	defer func() { _ = agent.Process.Kill(); _ = agent.Wait() }()
	if err := waitReady("http://127.0.0.1:19808/readyz", 10*time.Second); err != nil {
		return err
	}

	var lat []time.Duration
	for i := range n {
		uid := fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		cg := filepath.Join(base, "kubepods", "pod"+uid, fmt.Sprintf("%064x", i))
		start := time.Now()
		if err := os.MkdirAll(cg, 0o755); err != nil {
			return err
		}
		cmd := exec.Command("sh", "-c", "echo $$ > "+filepath.Join(cg, "cgroup.procs")+" && exec sleep 3600")
		if err := cmd.Start(); err != nil {
			return err
		}
		procs = append(procs, cmd)
		_, err := waitAdj(cmd.Process.Pid, 900, 5*time.Second)
		if err != nil {
			return fmt.Errorf("container %d: %w", i, err)
		}
		lat = append(lat, time.Since(start))
		if i >= idle {
			// Keep only `idle` containers for the idle measurement: the
			// others go as kubelet removes them, process then cgroups.
			old := procs[len(procs)-1]
			_ = old.Process.Kill()
			_ = old.Wait()
			procs = procs[:len(procs)-1]
			if err := removeCgroup(cg); err != nil {
				return fmt.Errorf("container %d: %w", i, err)
			}
			if err := removeCgroup(filepath.Dir(cg)); err != nil {
				return fmt.Errorf("container %d pod: %w", i, err)
			}
		}
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
	fmt.Printf("protection latency over %d containers (mkdir -> process at adj 900): p50 %v  p90 %v  p99 %v  max %v\n",
		len(lat), pct(0.50), pct(0.90), pct(0.99), lat[len(lat)-1])

	time.Sleep(2 * time.Second) // let the last re-checks settle
	cpu0, acpu0 := cpuTicks(agent.Process.Pid), cpuTicks(anchor)
	t0 := time.Now()
	time.Sleep(idleFor)
	cpu1, acpu1 := cpuTicks(agent.Process.Pid), cpuTicks(anchor)
	wall := time.Since(t0).Seconds()
	secs := float64(cpu1-cpu0) / 100 / wall
	nproc := countProcs()
	m := memKB(agent.Process.Pid)
	if resp, err := http.Get("http://127.0.0.1:19808/metrics"); err == nil {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "podwarden_reconcile_duration_seconds_sum") || strings.HasPrefix(l, "podwarden_reconcile_duration_seconds_count") {
				fmt.Println("  " + l)
			}
		}
		resp.Body.Close()
	}
	fmt.Printf("idle with %d target containers, %d processes on the machine: CPU %.2f%% of a core, RSS %d KiB (anon %d, file %d; peak %d KiB)\n",
		len(procs), nproc, secs*100, m["VmRSS"], m["RssAnon"], m["RssFile"], m["VmHWM"])
	if anchor > 0 {
		am := memKB(anchor)
		asecs := float64(acpu1-acpu0) / 100 / wall
		fmt.Printf("anchor pid %d over the same window: CPU %.2f%% of a core, RSS %d KiB\n", anchor, asecs*100, am["VmRSS"])
		fmt.Printf("ratio podwarden/anchor: RSS %.1fx", float64(m["VmRSS"])/float64(max(am["VmRSS"], 1)))
		if acpu1 > acpu0 {
			fmt.Printf(", CPU %.1fx", secs/asecs)
		}
		fmt.Println()
	}
	return nil
}

func waitReady(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("agent not ready at %s after %v", url, timeout)
}

// waitAdj polls the process's adj until it is want.
func waitAdj(pid, want int, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	path := fmt.Sprintf("/proc/%d/oom_score_adj", pid)
	for time.Since(start) < timeout {
		b, err := os.ReadFile(path)
		if err == nil {
			if v, _ := strconv.Atoi(strings.TrimSpace(string(b))); v == want {
				return time.Since(start), nil
			}
		}
		time.Sleep(50 * time.Microsecond)
	}
	return 0, fmt.Errorf("pid %d not at adj %d after %v", pid, want, timeout)
}

func cpuTicks(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}

// memKB returns the kB fields of /proc/PID/status (VmRSS, VmHWM,
// RssAnon, RssFile, ...).
func memKB(pid int) map[string]int {
	out := map[string]int{}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return out
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if f := strings.Fields(v); ok && len(f) == 2 && f[1] == "kB" {
			out[k], _ = strconv.Atoi(f[0])
		}
	}
	return out
}

func countProcs() int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			n++
		}
	}
	return n
}

// removeCgroup removes an empty cgroup, retrying while the kernel still
// counts the killed process in it.
func removeCgroup(dir string) error {
	var err error
	for range 100 {
		if err = os.Remove(dir); err == nil {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return err
}

func removeTree(dir string) {
	var dirs []string
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		for try := 0; try < 100 && os.Remove(dirs[i]) != nil; try++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
}
