package vmtest

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
)

// hogScenarios are those where one process of a pod grows until the node
// runs out: the kernel alone must come to an OOM kill in them.
var hogScenarios = []string{"slow-hog", "fast-hog", "jupyter", "renamed-hog", "renamed-prctl", "pidns-hog", "two-kernels", "cpython"}

// checkPressure asserts outcomes: who died, whether the kernel had to act,
// one kill per episode, the heartbeat bound. Nothing about speed beyond
// the bound on the heartbeat. earlyoom is measured, not judged.
func checkPressure(t *testing.T, scenario, mode string, c cell, fail func(why, format string, a ...any)) {
	t.Helper()
	alive := func(n string) bool { _, dead := c.deaths[n]; return !dead }
	switch {
	case scenario == "benign":
		if len(c.deaths) > 0 || c.kernelOOM {
			fail("false kill", "benign load: died %s, kernel OOM %v; want nothing", c.deadString(), c.kernelOOM)
		}
		return
	case mode == "kernel" && slices.Contains(hogScenarios, scenario):
		// The scenario must be the danger the issue describes, or the
		// other cells prove nothing.
		if !c.kernelOOM {
			fail("no danger", "kernel alone: no kernel OOM; the scenario did not reproduce the node running out")
		}
		return
	case mode != "podwarden":
		return
	}
	// Where no kill can help (a tmpfs fill, a host process), podwarden
	// leaves the node to the kernel and kubelet by design: the stall and
	// any OOM are theirs (the kernel-alone cell measures them), and what
	// is judged is that podwarden ended nothing and said why.
	// So it is where nothing should need a kill (page-cache churn beside a
	// flat holder): the stall is the kernel's reclaim, and what is judged
	// is that nothing died.
	judgeTiming := scenario != "shm-fill" && scenario != "host-pressure" && !strings.HasPrefix(scenario, "cache-")
	if judgeTiming && c.kernelOOM {
		fail("kernel OOM", "the kernel's OOM killer fired: podwarden acted too late")
	}
	for _, n := range []string{"sshd", "kubelet", "podwarden"} {
		if !alive(n) {
			fail("wrong victims", "%s died (%s)", n, c.by[n])
		}
	}
	// Gaps while memory is plentiful are the busy host's (the control
	// shows their size); the bound is on gaps once memory is short.
	switch bound, why := maxGapMS(env.load.Max()); {
	case !judgeTiming:
	case bound == 0:
		t.Logf("NOT JUDGED heartbeat: %s; longest gap while short %d ms", why, c.short)
	case c.short > bound+c.control:
		fail("heartbeat gap", "longest heartbeat gap while memory was short %d ms, want at most %d ms (%s) over the %d ms the busy host alone cost before the start", c.short, bound, why, c.control)
	}
	switch scenario {
	case "slow-hog", "fast-hog", "jupyter":
		hog := map[string]string{"jupyter": "python3"}[scenario]
		if hog == "" {
			hog = "tail"
		}
		if got := c.dead(); !slices.Equal(got, []string{hog}) || c.by[hog] != "podwarden" {
			fail("wrong victims", "died %s, want only %s, by podwarden", c.deadString(), hog)
		}
		if c.pwKills != 1 {
			fail("not one kill", "podwarden ended %d processes, want exactly 1 (one episode)", c.pwKills)
		}
		if scenario == "jupyter" && (!alive("jupyter-lab") || !alive("tini")) {
			fail("wrong victims", "the notebook server or the pod's init died: %s", c.deadString())
		}
	case "renamed-hog":
		// The hog runs from a file named systemd: its name is a default
		// keep pattern, and buys it nothing.
		if got := c.dead(); !slices.Equal(got, []string{"systemd"}) || c.by["systemd"] != "podwarden" {
			fail("wrong victims", "died %s, want only the renamed hog (systemd), by podwarden", c.deadString())
		}
		if c.pwKills != 1 {
			fail("not one kill", "podwarden ended %d processes, want exactly 1", c.pwKills)
		}
	case "renamed-prctl":
		// comm jupyter-lab (prctl), argv[0] sshd, file worker: two names
		// of the default keep patterns, one of them the server's beside it.
		if got := c.dead(); !slices.Equal(got, []string{"worker"}) || c.by["worker"] != "podwarden" {
			fail("wrong victims", "died %s, want only the hog that renamed itself jupyter-lab (worker), by podwarden", c.deadString())
		}
		if c.pwKills != 1 {
			fail("not one kill", "podwarden ended %d processes, want exactly 1", c.pwKills)
		}
	case "pidns-hog":
		// unshare exits when its child, the hog, does; podwarden must not
		// have signalled it, nor the pod's init or server.
		for _, n := range c.dead() {
			if n != "tail" && n != "unshare" || n == "unshare" && c.by[n] == "podwarden" {
				fail("wrong victims", "died %s, want only the hog (pid 1 of its own PID namespace) by podwarden, and unshare after it", c.deadString())
				break
			}
		}
		if c.by["tail"] != "podwarden" || !alive("tini") || !alive("jupyter-lab") {
			fail("wrong victims", "died %s, want the hog by podwarden, the pod's init (tini) and server alive", c.deadString())
		}
		if c.pwKills != 1 {
			fail("not one kill", "podwarden ended %d processes, want exactly 1", c.pwKills)
		}
	case "two-kernels":
		if got := c.dead(); !slices.Equal(got, []string{"py-grow"}) || c.by["py-grow"] != "podwarden" {
			fail("wrong victims", "died %s, want only the growing kernel (py-grow), by podwarden; the flat one and the server alive", c.deadString())
		}
		if c.pwKills != 1 {
			fail("not one kill", "podwarden ended %d processes, want exactly 1", c.pwKills)
		}
	case "cache-60", "cache-70", "cache-65-late":
		if len(c.deaths) > 0 || c.kernelOOM || len(c.signaled) > 0 {
			fail("false kill", "page-cache churn beside a flat holder: died %s, kernel OOM %v, podwarden signalled %v; want nothing", c.deadString(), c.kernelOOM, c.signaled)
		}
	case "cpython":
		checkCPython(c, fail)
	case "fork-storm":
		// The family (make and its compilers) is one kill.
		if !alive("app") || c.by["make"] != "podwarden" {
			fail("wrong victims", "died %s, want make (and its children) by podwarden, the server alive", c.deadString())
		}
		if c.pwKills != 1 {
			fail("not one kill", "podwarden ended %d times, want the family once", c.pwKills)
		}
	case "host-pressure", "shm-fill":
		// No kill can help: nothing ended, and the reason said.
		why := map[string]struct{ reason, what string }{
			"host-pressure": {"no_growth", "pressure from a host process (no target is growing)"},
			"shm-fill":      {"shmem", "a tmpfs fill no kill can free"},
		}[scenario]
		if c.pwKills != 0 || len(c.signaled) != 0 {
			fail("wrong victims", "podwarden signalled %v for %s", c.signaled, why.what)
		}
		// Either a refusal with the reason, or, when the fill was so slow
		// (a saturated host) that the guest went below minAvailable
		// without ever being in danger, the line that says so.
		said := false
		for _, l := range c.r.AgentLog {
			said = said || strings.Contains(l, "no kill could help") && strings.Contains(l, `why="`+why.reason+`: `) ||
				strings.Contains(l, "node memory below minAvailable without pressure: not acting")
		}
		if !said {
			fail("not said", "the agent's log does not say it ended nothing for %s (reason %s, or below minAvailable without pressure); the least MemAvailable seen: %v KiB", why.what, why.reason, c.r.Metrics["minavail-kb"])
		}
	case "deleted":
		if !alive("app") {
			fail("wrong victims", "the other pod's app died (%s)", c.by["app"])
		}
		podA := map[int]bool{}
		for _, p := range c.r.Procs {
			if strings.HasPrefix(p.Cgroup, deletedPod) {
				podA[p.PID] = true
			}
		}
		for pid, sig := range c.signaled {
			if !podA[pid] {
				fail("outside the culprit", "podwarden sent %s to pid %d, outside the pod that caused the pressure", sig, pid)
			}
		}
		// A kill claimed for a hog the deletion took is wrong, unless the
		// hog had podwarden's signal before the deletion began: on a
		// loaded host it can outlive the signal into the deletion.
		signaledFirst := false
		if del := c.r.Metrics["delete-ms"]; len(del) > 0 {
			for k, v := range c.r.Metrics {
				if strings.HasPrefix(k, "signal-tail-SIG") && len(v) > 0 && v[0] < del[0] {
					signaledFirst = true
				}
			}
		}
		if c.pwKills > 1 || c.pwKills == 1 && c.by["tail"] == "deleted" && !signaledFirst {
			fail("not one kill", "podwarden claims %d kills (the hog died by %s), want at most 1, and none the deletion did", c.pwKills, c.by["tail"])
		}
		if c.r.Checks["pod deleted"] != "yes" {
			fail("setup", "the pod was not deleted: %q", c.r.Checks["pod deleted"])
		}
	}
}

func printPressureTable(w *os.File) {
	prows.Lock()
	defer prows.Unlock()
	if len(prows.list) == 0 {
		return
	}
	order := map[string]int{}
	for i, m := range pressureModes {
		order[m] = i
	}
	sort.SliceStable(prows.list, func(i, j int) bool {
		a, b := prows.list[i], prows.list[j]
		if a.scenario != b.scenario {
			return a.scenario < b.scenario
		}
		return order[a.mode] > order[b.mode] // kernel, earlyoom, podwarden
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "pressure\tscenario\tmode\tfirst death (after start)\t(after onset)\theartbeat gap: all, short (control)\tdied (by)\tkernel OOM\tverdict")
	for _, r := range prows.list {
		fmt.Fprintf(tw, "PRESSURE\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.scenario, r.mode, dash(r.startKill), dash(r.onsetKill), dash(r.gap), dash(r.died), dash(r.oom), r.verdict)
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// pyStateRe reads guest/notebook.py's answer to SIGUSR1.
var pyStateRe = regexp.MustCompile(`^state cells=(\d+) interrupts=(\d+) data=(\d+) rss_kb=(\d+) `)

// pyRestKB bounds the interrupted kernel's resident size: CPython with the
// modules it loaded is ~10 MiB; its cell had grown hundreds.
const pyRestKB = 64 << 10

// checkCPython: podwarden's SIGINT raised KeyboardInterrupt in a real
// CPython: the ladder stopped there (no other signal), nothing died, the
// list went and the kernel lives with its variables.
func checkCPython(c cell, fail func(why, format string, a ...any)) {
	if len(c.deaths) > 0 {
		fail("wrong victims", "died %s, want nobody: the kernel heeds SIGINT", c.deadString())
	}
	py, ok := c.r.Proc("python3")
	if !ok {
		fail("setup", "no python3 in the cell's processes")
		return
	}
	if got := c.sent[py.PID]; !slices.Equal(got, []string{"SIGINT"}) {
		fail("not SIGINT alone", "podwarden sent the kernel %v, want SIGINT alone (it raises KeyboardInterrupt, and the cell gives the memory back)", got)
	}
	for pid, sigs := range c.sent {
		if pid != py.PID {
			fail("wrong victims", "podwarden sent %v to pid %d, not the growing kernel", sigs, pid)
		}
	}
	state := c.r.Checks["python state"]
	m := pyStateRe.FindStringSubmatch(state)
	if m == nil {
		fail("state lost", "the kernel did not answer for its state after the episode: %q (interrupted: %q)", state, c.r.Checks["python interrupted"])
		return
	}
	rss, _ := strconv.Atoi(m[4])
	if m[1] != "1" || m[2] != "1" || m[3] != "0" || rss > pyRestKB {
		fail("state lost", "the kernel's state %q: want cells=1 interrupts=1 (its variables kept), data=0 and at most %d KiB resident (the list's memory back)", state, pyRestKB)
	}
}
