package cli

import (
	"encoding/json"
	"flag"
	"os"
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
	out, errOut, code := runForTest(t, "victims", "-n", "18", "--proc-root", proc, "--cgroup-root", cg)
	if code != 0 {
		t.Fatalf("victims failed: %s", errOut)
	}
	golden(t, "seed-victims.golden", out)
	if !strings.Contains(out, "PROBLEM: a node OOM now would kill 17 system processes") ||
		!strings.Contains(out, "because that pod runs at oom_score_adj -997") {
		t.Fatalf("verdict missing:\n%s", out)
	}
}

func TestVictimsJSON(t *testing.T) {
	proc, cg := seedRoots(t)
	out, errOut, code := runForTest(t, "victims", "-o", "json", "-n", "0", "--proc-root", proc, "--cgroup-root", cg)
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
	for _, key := range []string{"pid", "comm", "points", "oom_score", "oom_score_adj", "rss_bytes", "cgroup", "rank"} {
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
	out, errOut, code := runForTest(t, "victims", "--cgroup", container, "--proc-root", proc, "--cgroup-root", cg)
	if code != 0 {
		t.Fatalf("victims failed: %s", errOut)
	}
	// Inside the container, journald at -250 outranks the 7.1 GiB python
	// at -997, and kubelet's oom.group=1 takes the python and the rest of
	// the container with it: the seed's "whole pod dies" problem.
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[1], "1     999716    systemd-journal") || !strings.Contains(out, "+2062665") ||
		!strings.Contains(out, "PROBLEM: an OOM in "+container+" now would kill pod "+seedPodUID+"'s systemd-journal (pid 999716)") {
		t.Fatalf("cgroup OOM:\n%s", out)
	}
	if strings.Contains(out, "/system.slice/sshd.service") {
		t.Fatalf("a host process is a candidate in a cgroup OOM:\n%s", out)
	}
}
