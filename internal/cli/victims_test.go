package cli

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := "testdata/" + name
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run go test -update once and check it by hand): %v", err)
	}
	if got != string(want) {
		t.Fatalf("output differs from %s:\n got:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestVictimsSeedNode(t *testing.T) {
	proc, cg := seedRoots(t)
	out, errOut, code := runForTest(t, "victims", "--limit", "18", "--proc-root", proc, "--cgroup-root", cg, "--pod-log-dir", podLogDir(proc))
	if code != 0 {
		t.Fatalf("victims failed: %s", errOut)
	}
	golden(t, "seed-victims.golden", out)
	if !strings.Contains(out, "PROBLEM: a node OOM now would kill 17 system processes") ||
		!strings.Contains(out, "before pod "+seedPodName+"'s python (pid 2062665)") ||
		!strings.Contains(out, "because that pod runs at oom_score_adj -997") {
		t.Fatalf("verdict missing:\n%s", out)
	}
	// Pods by name, sizes as sizes, and a last line that says what to do.
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "next: raise "+seedPodName+"'s processes") ||
		!strings.Contains(last, "`podwarden agent --once --dry-run`") {
		t.Errorf("last line %q: want the next step", last)
	}
	if strings.Contains(out, seedPodUID+" ") || !strings.Contains(out, "  -48.0 GiB  ") || strings.Contains(out, "-12581720") {
		t.Errorf("want pods by name and badness as a size, not raw points:\n%s", out)
	}
}

// --exit-code: 0 no problem, 1 problem, 2 could not decide; without it a
// problem still exits 0.
func TestVictimsExitCode(t *testing.T) {
	proc, cg := seedRoots(t)
	healthy := t.TempDir()
	writeProcTree(t, filepath.Join(healthy, "proc"), []fakeProc{
		{pid: 1, comm: "systemd", cmdline: []string{"systemd"}, rssKB: 4096, cgroup: "/init.scope"},
		{pid: 10, ppid: 1, comm: "sshd", adj: -900, cmdline: []string{"sshd"}, rssKB: 4096, cgroup: "/system.slice/sshd.service"},
		{pid: 20, ppid: 1, comm: "python", adj: 900, cmdline: []string{"python"}, rssKB: 4 << 20, cgroup: "/kubepods/burstable/pod" + seedPodUID + "/" + seedContainerID},
	}, seedMemTotalKB)
	for name, tc := range map[string]struct {
		args []string
		code int
		out  string
	}{
		"problem":              {[]string{"--proc-root", proc, "--cgroup-root", cg}, 0, "PROBLEM: "},
		"problem, --exit-code": {[]string{"--exit-code", "--proc-root", proc, "--cgroup-root", cg}, 1, "PROBLEM: "},
		"json, --exit-code":    {[]string{"--exit-code", "-o", "json", "--proc-root", proc, "--cgroup-root", cg}, 1, `"problem": true`},
		"fine, --exit-code":    {[]string{"--exit-code", "--proc-root", filepath.Join(healthy, "proc"), "--cgroup-root", ""}, 0, "verdict: a node OOM now would kill pod " + seedPodName + "'s python"},
		"error, --exit-code":   {[]string{"--exit-code", "--proc-root", "/nonexistent/proc"}, 2, ""},
		"error":                {[]string{"--proc-root", "/nonexistent/proc"}, 1, ""},
		// A bad flag is "could not tell" too, wherever --exit-code is (it
		// exited 1, which means "problem").
		"bad flag, --exit-code":       {[]string{"--exit-code", "--bogus"}, 2, ""},
		"--exit-code after bad flag":  {[]string{"--bogus", "--exit-code"}, 2, ""},
		"bad value, --exit-code":      {[]string{"--exit-code", "--limit", "x"}, 2, ""},
		"argument, --exit-code":       {[]string{"--exit-code", "extra"}, 2, ""},
		"bad output, --exit-code":     {[]string{"--exit-code", "-o", "nope"}, 2, ""},
		"bad flag":                    {[]string{"--bogus"}, 1, ""},
		"bad flag, --exit-code=false": {[]string{"--exit-code=false", "--bogus"}, 1, ""},
	} {
		t.Run(name, func(t *testing.T) {
			out, errOut, code := runForTest(t, append([]string{"victims", "--pod-log-dir", podLogDir(proc)}, tc.args...)...)
			if code != tc.code || !strings.Contains(out, tc.out) {
				t.Fatalf("code %d (want %d), stdout:\n%s\nstderr: %s", code, tc.code, out, errOut)
			}
			if tc.code == 1 && tc.out != "" && errOut != "" {
				t.Errorf("a problem verdict is not an error: stderr %q", errOut)
			}
			if tc.code == 2 && strings.Contains(tc.args[len(tc.args)-1], "/nonexistent/proc") && !strings.Contains(errOut, "/nonexistent/proc") {
				t.Errorf("stderr %q should name the input", errOut)
			}
		})
	}
}

func TestVictimsWideNamespaceAndHeaders(t *testing.T) {
	proc, cg := seedRoots(t)
	args := []string{"victims", "--proc-root", proc, "--cgroup-root", cg, "--pod-log-dir", podLogDir(proc)}
	out, errOut, code := runForTest(t, append(args, "-o", "wide", "-n", "hub")...)
	if code != 0 {
		t.Fatalf("victims -o wide -n hub: %s", errOut)
	}
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "RANK  PID") || !strings.Contains(lines[0], "POINTS") || !strings.Contains(lines[0], "CONTAINER") ||
		!strings.HasPrefix(lines[1], "18    999716") || !strings.Contains(lines[1], "-12581720") || !strings.Contains(lines[1], "2c6ca22c5968c") {
		t.Fatalf("wide, namespace hub only (ranks node-wide):\n%s", out)
	}
	if strings.Contains(out, "/system.slice/polkitd.service") {
		t.Errorf("-n hub shows host processes:\n%s", out)
	}
	// --no-headers is kubectl's: the rows and nothing else, for scripts
	// (it used to keep the "... more", verdict and next lines).
	for _, o := range []string{"table", "wide"} {
		bare, _, _ := runForTest(t, append(args, "-o", o, "--no-headers", "--limit", "3")...)
		rows := strings.Split(strings.TrimSuffix(bare, "\n"), "\n")
		if len(rows) != 3 || !strings.HasPrefix(rows[0], "1  2057270  polkitd") || !strings.HasPrefix(rows[2], "3  1565") {
			t.Errorf("-o %s --no-headers: want the 3 rows only:\n%s", o, bare)
		}
	}
	// -n hub --limit 0 shows every hub victim: the namespace, not the
	// limit, left the others out (it printed "... 25 more victims
	// (--limit 0 shows all)").
	all, _, _ := runForTest(t, append(args, "-n", "hub", "--limit", "0")...)
	if strings.Contains(all, "more victims") || !strings.Contains(all, "PROBLEM: ") {
		t.Errorf("-n hub --limit 0:\n%s", all)
	}
	cut, _, _ := runForTest(t, append(args, "--limit", "2")...)
	if !strings.Contains(cut, "\n... 24 more victims (--limit 0 shows all)\n") {
		t.Errorf("--limit 2:\n%s", cut)
	}
	// A namespace without victims is kubectl's empty list: said on
	// stderr, exit 0, the node's verdict still printed.
	for ns, want := range map[string]string{
		"5":           "-n is the namespace now, as in kubectl: --limit 5 sets how many victims to show",
		"kube-system": "no process of a pod in namespace kube-system is a victim on this node (pods named from " + podLogDir(proc) + ")",
	} {
		for output, stdout := range map[string]string{"table": "\nPROBLEM: ", "json": `"victims": [],`, "yaml": "victims: []\n", "name": ""} {
			out, errOut, code := runForTest(t, append(args, "-n", ns, "-o", output)...)
			if code != 0 || !strings.Contains(errOut, want) || !strings.Contains(out, stdout) || output == "name" && out != "" {
				t.Errorf("-n %s -o %s: code %d, stdout %q, stderr %q", ns, output, code, out, errOut)
			}
		}
	}
	names, _, code := runForTest(t, append(args, "-o", "name", "-n", "hub")...)
	if code != 0 || !strings.HasPrefix(names, "process/999716\nprocess/") || strings.Count(names, "\n") != 38 {
		t.Errorf("-o name -n hub: want journald and its 37 group members, in kill order:\n%s", names)
	}
	yml, _, code := runForTest(t, append(args, "-o", "yaml", "--limit", "1")...)
	if code != 0 || !strings.HasPrefix(yml, "apiVersion: podwarden.dev/v1\nkind: OOMPrediction\ndomain: node\n") || !strings.Contains(yml, "\nnext: ") {
		t.Errorf("yaml:\n%s", yml)
	}
}

func TestVictimsJSON(t *testing.T) {
	proc, cg := seedRoots(t)
	out, errOut, code := runForTest(t, "victims", "-o", "json", "--limit", "0", "--proc-root", proc, "--cgroup-root", cg, "--pod-log-dir", podLogDir(proc))
	if code != 0 {
		t.Fatalf("victims failed: %s", errOut)
	}
	var doc struct {
		Domain  string           `json:"domain"`
		Victims []map[string]any `json:"victims"`
		Verdict struct {
			Problem bool   `json:"problem"`
			Text    string `json:"text"`
		} `json:"verdict"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Domain != "node" || !doc.Verdict.Problem || len(doc.Victims) == 0 {
		t.Fatalf("doc = %+v", doc)
	}
	for _, key := range []string{"pid", "comm", "points", "badness_bytes", "oom_score", "oom_score_adj", "rss_bytes", "cgroup", "rank"} {
		if _, ok := doc.Victims[0][key]; !ok {
			t.Errorf("row lacks %q", key)
		}
	}
	// The hog takes the rest of its container with it: kubelet's
	// memory.oom.group=1 on the container cgroup.
	for _, v := range doc.Victims {
		if v["pid"].(float64) == 2062665 {
			if v["group_cgroup"] == nil || len(v["members"].([]any)) != 37 {
				t.Fatalf("hog row = %v", v)
			}
		}
		if v["pid"].(float64) == 999716 && (v["pod_namespace"] != "hub" || v["pod_name"] != "jupyter-alice" || v["pod_uid"] != seedPodUID) {
			t.Errorf("pod row = %v", v)
		}
	}
}

func TestVictimsCgroupDomain(t *testing.T) {
	proc, cg := seedRoots(t)
	container := "/kubepods/pod" + seedPodUID + "/crio-" + seedContainerID
	_, errOut, code := runForTest(t, "victims", "--cgroup", container, "--proc-root", proc, "--cgroup-root", cg)
	if code == 0 || !strings.Contains(errOut, "no memory limit") {
		t.Fatalf("unlimited cgroup: code %d, stderr %q", code, errOut)
	}
	if err := os.WriteFile(cg+container+"/memory.max", []byte("191126044672\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runForTest(t, "victims", "--cgroup", container, "--proc-root", proc, "--cgroup-root", cg, "--pod-log-dir", podLogDir(proc))
	if code != 0 {
		t.Fatalf("victims failed: %s", errOut)
	}
	// Inside the container, journald at -250 outranks the 7.1 GiB python
	// at -997, and kubelet's oom.group=1 takes the python and the rest of
	// the container with it: the seed's "whole pod dies" problem.
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[1], "1     999716    systemd-journal") || !strings.Contains(out, "+2062665") ||
		!strings.Contains(out, "PROBLEM: an OOM in "+container+" now would kill pod "+seedPodName+"'s systemd-journal (pid 999716)") ||
		!strings.Contains(out, "next: write memory.oom.group=0 on "+container+" so that one OOM kills one process") ||
		!strings.Contains(out, "then `podwarden victims --cgroup "+container+"` again") {
		t.Fatalf("cgroup OOM:\n%s", out)
	}
	if strings.Contains(out, "/system.slice/sshd.service") {
		t.Fatalf("a host process is a candidate in a cgroup OOM:\n%s", out)
	}
}
