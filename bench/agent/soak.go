package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// soakSize is how much churn a soak makes.
type soakSize struct {
	procs, cgroups, podCgroups, targets int
}

// soak runs the agent through process and cgroup churn and reports whether
// its memory, file descriptors and inotify watches stay flat: procs
// short-lived processes forked inside target containers (pid churn),
// cgroups cgroups created and removed inside them (what a pod with
// writable cgroups can do) and podCgroups cgroups created and removed as
// pods come and go (a pod cgroup and its container, the container a target
// while it lives), with the agent's RSS, goroutines and CPU sampled
// throughout. Everything is local: the agent runs without a runtime
// (--no-cri) and serves metrics on loopback.
func soak(size soakSize, bin, memRoot string, port int, profDir string) error {
	nprocs, ncgroups, ntargets := size.procs, size.cgroups, size.targets
	prefix := fmt.Sprintf("/podwarden-soak-%d", os.Getpid())
	base := filepath.Join(memRoot, prefix)
	var keep []*exec.Cmd
	defer func() {
		for _, c := range keep {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
		removeTree(base)
	}()
	var dirs []string
	for i := range ntargets {
		d := filepath.Join(base, "kubepods", fmt.Sprintf("pod%08x-0000-4000-8000-000000000000", i), fmt.Sprintf("%064x", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		dirs = append(dirs, d)
	}
	// Interrupted (or killed by timeout(1)), it still stops the agent and
	// the fork loops and removes its cgroups.
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// No host rules: the soak must not touch this machine's daemons.
	cfg := filepath.Join(os.TempDir(), fmt.Sprintf("podwarden-soak-%d.yaml", os.Getpid()))
	if err := os.WriteFile(cfg, []byte("protected: []\n"), 0o644); err != nil {
		return err
	}
	defer os.Remove(cfg)
	args := []string{"agent", "--no-cri", "--cgroup-selector", prefix + "/kubepods/pod*/*", "--config", cfg,
		"--metrics-addr", addr, "--log-level", "error", "--interval", "10s", "--kmsg-path", ""}
	if profDir != "" {
		args = append(args, "--debug-pprof")
	}
	agent := exec.CommandContext(ctx, bin, args...)
	agent.Stderr = os.Stderr
	if err := agent.Start(); err != nil {
		return fmt.Errorf("start agent: %w", err)
	}
	defer func() { _ = agent.Process.Kill(); _ = agent.Wait() }()
	if err := waitReady("http://"+addr+"/readyz", 30*time.Second); err != nil {
		return err
	}
	for _, d := range dirs {
		cmd := exec.Command("sh", "-c", "echo $$ > "+filepath.Join(d, "cgroup.procs")+" && exec sleep 3600")
		if err := cmd.Start(); err != nil {
			return err
		}
		keep = append(keep, cmd)
	}
	pid := agent.Process.Pid

	// A warm-up tenth of the churn, so the baseline includes what any
	// run allocates once (buffers, maps at their working size).
	kubepods := filepath.Join(base, "kubepods")
	churn(ctx, dirs, kubepods, nprocs/10, ncgroups/10, size.podCgroups/10)
	metrics := "http://" + addr + "/metrics"
	settle(ctx, metrics)
	fds0, wds0, dirs0 := countFDs(pid), countWatches(pid), countDirs(memRoot)
	gauge0 := metric(metrics, "podwarden_cgroup_watches")
	m0 := memKB(pid)
	base0 := m0["VmRSS"]
	heap0 := heapStats(metrics)
	saveProfile(profDir, addr, "start")
	live0 := metric(metrics, "go_memstats_next_gc_bytes") / 2
	cpu0 := cpuTicks(pid)
	start := time.Now()

	var mu sync.Mutex
	maxRSS, maxG := base0, 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
			r := memKB(pid)["VmRSS"]
			g := metric("http://"+addr+"/metrics", "go_goroutines")
			mu.Lock()
			maxRSS, maxG = max(maxRSS, r), max(maxG, int(g))
			mu.Unlock()
		}
	})
	forks, mkdirs := churn(ctx, dirs, kubepods, nprocs, ncgroups, size.podCgroups)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	wall := time.Since(start)
	close(stop)
	wg.Wait()
	settle(ctx, metrics)
	end := memKB(pid)
	fds1, wds1, dirs1 := countFDs(pid), countWatches(pid), countDirs(memRoot)
	gauge1 := metric(metrics, "podwarden_cgroup_watches")
	live1 := metric(metrics, "go_memstats_next_gc_bytes") / 2
	heap1 := heapStats(metrics)
	saveProfile(profDir, addr, "end")
	cpu := float64(cpuTicks(pid)-cpu0) / 100
	fmt.Printf("churn: %d processes forked and %d cgroups created and removed in %d targets, %d cgroups created and removed as pods, in %.1f s\n",
		forks, mkdirs-size.podCgroups, ntargets, size.podCgroups, wall.Seconds())
	fmt.Printf("agent open fds: %d after warm-up, %d at the end (%+d)\n", fds0, fds1, fds1-fds0)
	fmt.Printf("agent inotify watches (/proc fdinfo): %d after warm-up, %d at the end (%+d), for %d -> %d directories under %s; podwarden_cgroup_watches %v -> %v\n",
		wds0, wds1, wds1-wds0, dirs0, dirs1, memRoot, gauge0, gauge1)
	fmt.Printf("agent RSS: %d KiB after warm-up, %d KiB at the end (%+d KiB), peak during churn %d KiB (%+d KiB); anon %d -> %d KiB, file %d -> %d KiB\n",
		base0, end["VmRSS"], end["VmRSS"]-base0, maxRSS, maxRSS-base0, m0["RssAnon"], end["RssAnon"], m0["RssFile"], end["RssFile"])
	fmt.Printf("agent live heap after a GC (half the next GC goal): %.0f KiB after warm-up, %.0f KiB at the end (%+.0f KiB)\n",
		live0/1024, live1/1024, (live1-live0)/1024)
	for _, k := range heapStatNames {
		if strings.HasSuffix(k, "_bytes") {
			fmt.Printf("  %-34s %8.0f KiB -> %8.0f KiB (%+.0f KiB)\n", k, heap0[k]/1024, heap1[k]/1024, (heap1[k]-heap0[k])/1024)
		} else {
			fmt.Printf("  %-34s %8.0f -> %8.0f (%+.0f)\n", k, heap0[k], heap1[k], heap1[k]-heap0[k])
		}
	}
	fmt.Printf("agent CPU: %.2f s over %.1f s (%.1f%% of a core), %.1f ms per 1,000 events; max goroutines %d\n",
		cpu, wall.Seconds(), cpu/wall.Seconds()*100, cpu*1000/float64(forks+2*mkdirs)*1000, maxG)
	for _, name := range []string{"podwarden_changes_total", "podwarden_errors_total", "podwarden_events_lost_total"} {
		fmt.Printf("  %s %v\n", name, metric("http://"+addr+"/metrics", name))
	}
	if wds1 > dirs1+64 || fds1 > fds0+4 {
		fmt.Printf("WATCHES OR FDS NOT FLAT: %d watches for %d directories, fds %d -> %d\n", wds1, dirs1, fds0, fds1)
	} else {
		fmt.Printf("watches follow the directories (within 64), fds flat\n")
	}
	if d := end["VmRSS"] - base0; d > 2048 {
		fmt.Printf("RSS NOT FLAT: grew %d KiB (> 2 MiB)\n", d)
	} else {
		fmt.Printf("RSS flat within 2 MiB\n")
	}
	return nil
}

// churn forks nprocs short processes inside the targets (two shell loops
// per core's worth of targets), creates and removes ncgroups cgroups
// inside them, and npod cgroups as pods under kubepods (a pod cgroup and a
// container cgroup each), concurrently. It returns what it did.
func churn(ctx context.Context, dirs []string, kubepods string, nprocs, ncgroups, npod int) (forks, mkdirs int) {
	var wg sync.WaitGroup
	loops := 4
	per := nprocs / loops
	for i := range loops {
		d := dirs[i%len(dirs)]
		wg.Go(func() {
			script := fmt.Sprintf("echo $$ > %s && i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done", filepath.Join(d, "cgroup.procs"), per)
			if out, err := exec.CommandContext(ctx, "sh", "-c", script).CombinedOutput(); err != nil && ctx.Err() == nil {
				log.Printf("fork loop: %v: %s", err, out)
			}
		})
	}
	wg.Go(func() {
		for i := range ncgroups {
			if ctx.Err() != nil {
				return
			}
			c := filepath.Join(dirs[i%len(dirs)], fmt.Sprintf("sub%d", i))
			if err := os.Mkdir(c, 0o755); err != nil {
				log.Printf("mkdir: %v", err)
				continue
			}
			for try := 0; try < 100 && os.Remove(c) != nil; try++ {
				time.Sleep(time.Millisecond)
			}
		}
	})
	wg.Go(func() {
		for i := 0; i+1 < npod && ctx.Err() == nil; i += 2 {
			pod := filepath.Join(kubepods, fmt.Sprintf("pod%08x-1111-4000-8000-%012x", i, i))
			ctr := filepath.Join(pod, fmt.Sprintf("%064x", i+1))
			if err := os.MkdirAll(ctr, 0o755); err != nil {
				log.Printf("mkdir: %v", err)
				continue
			}
			for _, d := range []string{ctr, pod} {
				for try := 0; try < 100 && os.Remove(d) != nil; try++ {
					time.Sleep(time.Millisecond)
				}
			}
		}
	})
	wg.Wait()
	return per * loops, ncgroups + npod/2*2
}

// countFDs counts pid's open file descriptors.
func countFDs(pid int) int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents)
}

// countWatches counts pid's inotify watches: one "inotify wd:" line each
// in /proc/PID/fdinfo, whoever holds them for the process.
func countWatches(pid int) int {
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, _ := os.ReadDir(dir)
	n := 0
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		n += strings.Count(string(b), "inotify wd:")
	}
	return n
}

// countDirs counts the directories (cgroups) under root, root included.
func countDirs(root string) int {
	n := 0
	_ = filepath.WalkDir(root, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// settle waits for the agent to finish a garbage collection after the
// churn (the runtime forces one every two minutes when little is
// allocated), so RSS is measured on the live heap, not on garbage that a
// collection would free.
func settle(ctx context.Context, metrics string) {
	n := metric(metrics, "go_gc_duration_seconds_count")
	for deadline := time.Now().Add(150 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(time.Second) {
		if metric(metrics, "go_gc_duration_seconds_count") > n+1 {
			break
		}
	}
	time.Sleep(2 * time.Second)
}

// metric sums the samples of one metric name on the agent's /metrics.
func metric(url, name string) float64 {
	resp, err := http.Get(url)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, name+" ") || strings.HasPrefix(l, name+"{") {
			f := strings.Fields(l)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

// heapStatNames are the Go runtime's memory statistics (runtime.MemStats
// through the agent's Go collector) that tell live heap, heap the runtime
// keeps but does not use, heap returned to the OS, stacks and runtime
// metadata apart, so RSS growth can be laid to one of them.
var heapStatNames = []string{
	"go_memstats_heap_inuse_bytes", "go_memstats_heap_idle_bytes", "go_memstats_heap_released_bytes",
	"go_memstats_stack_inuse_bytes", "go_memstats_mspan_inuse_bytes", "go_memstats_gc_sys_bytes",
	"go_memstats_other_sys_bytes", "go_memstats_sys_bytes", "go_memstats_heap_objects",
}

func heapStats(metrics string) map[string]float64 {
	out := map[string]float64{}
	for _, k := range heapStatNames {
		out[k] = metric(metrics, k)
	}
	return out
}

// saveProfile writes the agent's heap profile (after a GC) to
// dir/heap-<name>.pb.gz, for go tool pprof -diff_base; dir "" skips it.
func saveProfile(dir, addr, name string) {
	if dir == "" {
		return
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/heap?gc=1")
	if err != nil {
		log.Printf("heap profile: %v", err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(filepath.Join(dir, "heap-"+name+".pb.gz"))
	if err != nil {
		log.Printf("heap profile: %v", err)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		log.Printf("heap profile: %v", err)
	}
}
