package cli

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The seed's node: the EKS instance whose `oom_info.py` output is
// testdata/seed-ps.txt (copied verbatim from the notes, <SNIP> lines
// dropped). The tests rebuild a /proc tree from that output, so `podwarden
// ps` must print the notes' own text back.
const (
	seedPodUID      = "30e633b5-4140-4774-9122-1b9e140c8556"
	seedContainerID = "2c6ca22c5968ca227b2b77480c87fa56044a98fb92280ce03e613d95b6ea505b"
	seedMemTotalKB  = 192 << 20 // "the host instance has 192Gi of memory"
)

type fakeProc struct {
	pid, ppid  int
	comm       string
	score, adj int
	cmdline    []string
	rssKB      uint64
	cgroup     string
}

var seedLine = regexp.MustCompile(`^( *)\[(\d+)\] (.+): (\d+) \(([+-]\d+)\)$`)

// parseSeedTree reads oom_info.py's output back into processes; the
// indentation gives the parent.
func parseSeedTree(t *testing.T, path string) []fakeProc {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []fakeProc
	var stack []int // pid at each depth
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := seedLine.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Fatalf("%s: unexpected line %q", path, sc.Text())
		}
		depth := len(m[1]) / 2
		pid, _ := strconv.Atoi(m[2])
		score, _ := strconv.Atoi(m[4])
		adj, _ := strconv.Atoi(m[5])
		ppid := 0
		if depth > 0 {
			ppid = stack[depth-1]
		}
		stack = append(stack[:depth], pid)
		out = append(out, fakeProc{pid: pid, ppid: ppid, comm: m[3], score: score, adj: adj, cmdline: []string{m[3]}, rssKB: 4096})
	}
	return out
}

// seedNode adds what the notes did not print: the pod's cgroups, the
// memory each process holds (the python hog: 7.1 GiB) and command lines.
func seedNode(t *testing.T) []fakeProc {
	procs := parseSeedTree(t, "testdata/seed-ps.txt")
	inPod := map[int]bool{}
	for i := range procs {
		p := &procs[i]
		container := "/kubepods/pod" + seedPodUID + "/crio-" + seedContainerID
		switch {
		case p.pid == 999004:
			p.cgroup = "/kubepods/pod" + seedPodUID + "/crio-conmon-" + seedContainerID
		case p.ppid == 999004 || inPod[p.ppid]:
			inPod[p.pid] = true
			p.cgroup = container + "/init.scope"
			if p.ppid != 999004 {
				p.cgroup = container + "/system.slice"
			}
		case p.pid == 1:
			p.cgroup = "/init.scope"
		default:
			p.cgroup = "/system.slice/" + p.comm + ".service"
		}
		if p.pid == 2062665 {
			p.rssKB = 7_450_000
			p.cmdline = []string{"python", "-c", "x = ' ' * 1024**3"}
		}
	}
	return procs
}

// writeProcTree writes procs as a /proc tree in the kernel's own formats
// (fs/proc/array.c for stat and status).
func writeProcTree(t *testing.T, root string, procs []fakeProc, memTotalKB uint64) {
	t.Helper()
	write := func(path, content string) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "meminfo"), fmt.Sprintf("MemTotal:       %d kB\nMemFree:        %d kB\nMemAvailable:   %d kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n", memTotalKB, memTotalKB/4, memTotalKB/3))
	for _, p := range procs {
		dir := filepath.Join(root, strconv.Itoa(p.pid))
		write(filepath.Join(dir, "stat"), fmt.Sprintf("%d (%s) S %d %d %d 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 1000 %d %d 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
			p.pid, p.comm, p.ppid, p.pid, p.pid, p.rssKB*1024*2, p.rssKB/4))
		write(filepath.Join(dir, "status"), fmt.Sprintf("Name:\t%s\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t%d\nNgid:\t0\nPid:\t%d\nPPid:\t%d\nTracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nVmRSS:\t%8d kB\nRssAnon:\t%8d kB\nRssFile:\t%8d kB\nRssShmem:\t%8d kB\nVmPTE:\t%8d kB\nVmSwap:\t%8d kB\nThreads:\t1\n",
			p.comm, p.pid, p.pid, p.ppid, p.rssKB, p.rssKB-100, 100, 0, 16+p.rssKB/512, 0))
		write(filepath.Join(dir, "cmdline"), strings.Join(p.cmdline, "\x00")+"\x00")
		write(filepath.Join(dir, "oom_score"), fmt.Sprintf("%d\n", p.score))
		write(filepath.Join(dir, "oom_score_adj"), fmt.Sprintf("%d\n", p.adj))
		write(filepath.Join(dir, "cgroup"), "0::"+p.cgroup+"\n")
	}
}

// writeCgroupV2 writes a v2 cgroup tree holding every fixture cgroup, with
// memory.oom.group=1 where kubelet puts it (the container cgroup).
func writeCgroupV2(t *testing.T, root string, procs []fakeProc, group map[string]bool) {
	t.Helper()
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("cpuset cpu io memory hugetlb pids rdma misc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, p := range procs {
		for cg := p.cgroup; cg != "/" && cg != "" && !seen[cg]; cg = filepath.Dir(cg) {
			seen[cg] = true
			dir := filepath.Join(root, cg)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			flag := "0\n"
			if group[cg] {
				flag = "1\n"
			}
			for name, content := range map[string]string{"memory.oom.group": flag, "memory.max": "max\n", "memory.swap.max": "max\n", "memory.current": "0\n"} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}
