package agent

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"podwarden/internal/cgroup"
	"podwarden/internal/policy"
	"podwarden/internal/procfs"
)

// node is a fixture host: a /proc tree and a cgroup v2 tree in a temp dir,
// written in the kernel's formats, so the agent's real readers and writers
// run against it. Writes to fixture files behave like the real files for
// what the agent does (write, read back).
type node struct {
	t      *testing.T
	proc   string
	cgroup string
}

type proc struct {
	pid    int
	comm   string
	adj    int
	cgroup string
}

func newNode(t *testing.T) *node {
	dir := t.TempDir()
	n := &node{t: t, proc: filepath.Join(dir, "proc"), cgroup: filepath.Join(dir, "cgroup")}
	n.write(filepath.Join(n.proc, "meminfo"), "MemTotal:       8000000 kB\nMemFree:        4000000 kB\nMemAvailable:   5000000 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n")
	n.write(filepath.Join(n.cgroup, "cgroup.controllers"), "cpuset cpu io memory pids\n")
	n.write(filepath.Join(n.cgroup, "cgroup.procs"), "")
	return n
}

// config is a Config with pol that reads and writes this node's trees.
func (n *node) config(t *testing.T, pol policy.Config) Config {
	t.Helper()
	pfs, err := procfs.NewFS(n.proc)
	if err != nil {
		t.Fatal(err)
	}
	cfs, err := cgroup.NewFS(n.cgroup)
	if err != nil {
		t.Fatal(err)
	}
	return Config{Policy: pol, Proc: pfs, Cgroups: cfs}
}

func (n *node) write(path, content string) {
	n.t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		n.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		n.t.Fatal(err)
	}
}

func (n *node) read(path string) string {
	n.t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		n.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// mkcg creates a cgroup with memory.oom.group set to flag.
func (n *node) mkcg(cg string, flag int) {
	dir := filepath.Join(n.cgroup, cg)
	n.write(filepath.Join(dir, "memory.oom.group"), fmt.Sprintf("%d\n", flag))
	n.write(filepath.Join(dir, "memory.max"), "max\n")
	n.write(filepath.Join(dir, "memory.events"), "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n")
	if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err != nil {
		n.write(filepath.Join(dir, "cgroup.procs"), "")
	}
}

func (n *node) addProc(p proc) {
	dir := filepath.Join(n.proc, strconv.Itoa(p.pid))
	n.write(filepath.Join(dir, "stat"), fmt.Sprintf("%d (%s) S 1 %d %d 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 100 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n", p.pid, p.comm, p.pid, p.pid))
	n.write(filepath.Join(dir, "status"), fmt.Sprintf("Name:\t%s\nState:\tS (sleeping)\nTgid:\t%d\nPid:\t%d\nPPid:\t1\nUid:\t0\t0\t0\t0\nVmRSS:\t    1000 kB\nRssAnon:\t     900 kB\nRssFile:\t     100 kB\nRssShmem:\t       0 kB\nVmPTE:\t      40 kB\nVmSwap:\t       0 kB\nThreads:\t1\n", p.comm, p.pid, p.pid))
	n.write(filepath.Join(dir, "cgroup"), "0::"+p.cgroup+"\n")
	n.write(filepath.Join(dir, "oom_score_adj"), fmt.Sprintf("%d\n", p.adj))
	n.write(filepath.Join(dir, "oom_score"), "666\n")
	n.write(filepath.Join(dir, "cmdline"), p.comm+"\x00")
	procs := filepath.Join(n.cgroup, p.cgroup, "cgroup.procs")
	old, _ := os.ReadFile(procs)
	n.write(procs, string(old)+strconv.Itoa(p.pid)+"\n")
}

func (n *node) adj(pid int) string {
	return n.read(filepath.Join(n.proc, strconv.Itoa(pid), "oom_score_adj"))
}

func (n *node) flag(cg string) string {
	return n.read(filepath.Join(n.cgroup, cg, "memory.oom.group"))
}

// files snapshots every regular file's content, to prove which ones a run
// wrote.
func (n *node) files() map[string]string {
	n.t.Helper()
	out := map[string]string{}
	for _, root := range []string{n.proc, n.cgroup} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			out[path] = string(b)
			return err
		})
		if err != nil {
			n.t.Fatal(err)
		}
	}
	return out
}

func diffFiles(before, after map[string]string) []string {
	var changed []string
	for path, b := range before {
		if after[path] != b {
			changed = append(changed, path)
		}
	}
	return changed
}
