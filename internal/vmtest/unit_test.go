package vmtest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readNewc is a minimal newc reader, enough to check what writeTo emits.
func readNewc(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for off := 0; ; {
		if string(b[off:off+6]) != "070701" {
			t.Fatalf("bad magic at %d", off)
		}
		field := func(i int) int {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return int(v)
		}
		size, nameLen := field(6), field(11)
		name := string(b[off+110 : off+110+nameLen-1])
		off = (off + 110 + nameLen + 3) &^ 3
		if name == "TRAILER!!!" {
			return out
		}
		out[name] = b[off : off+size]
		off = (off + size + 3) &^ 3
	}
}

func TestCpioRoundTrip(t *testing.T) {
	im := newImage()
	im.add("bin/busybox", 0o755, []byte("12345"))
	im.add("init", 0o755, []byte("#!/bin/busybox sh\n"))
	im.chardev("dev/console", 5, 1)
	var buf bytes.Buffer
	if _, err := im.writeTo(&buf); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d not 4-aligned", buf.Len())
	}
	got := readNewc(t, buf.Bytes())
	for name, want := range map[string]string{"bin": "", "bin/busybox": "12345", "init": "#!/bin/busybox sh\n", "dev/console": ""} {
		if g, ok := got[name]; !ok || string(g) != want {
			t.Errorf("%s: got %q (present %v), want %q", name, g, ok, want)
		}
	}
}

func TestParseKillsFixture(t *testing.T) {
	b, err := os.ReadFile("testdata/kmsg-6.1-container-limit.log")
	if err != nil {
		t.Skip("fixture not recorded yet: run the k8s guest once")
	}
	r := &Run{Kills: parseKills(strings.Split(string(b), "\n"))}
	got := r.Killed()
	slices.Sort(got)
	if want := []string{"app", "tail", "worker"}; !slices.Equal(got, want) {
		t.Errorf("killed %v, want %v", got, want)
	}
	for _, k := range r.Kills {
		if !k.Memcg || k.Adj != -997 {
			t.Errorf("kill %+v: want a memcg kill at -997", k)
		}
	}
}

func TestParserConsole(t *testing.T) {
	console := []string{
		"PWBOOT mode=k8s kernel=6.1.0-56-amd64 mem_kb=173888 uptime=2.49",
		"PWBEGIN s1 uptime=2.50",
		`PWRESULT {"scenario":"s1","kind":"check","name":"adj app","value":"-997"}`,
		`PWRESULT {"scenario":"s1","kind":"metric","name":"adj-latency-ms","value":30}`,
		`PWRESULT {"scenario":"s1","kind":"proc","name":"app","pid":101,"role":"bystander","cgroup":"/k/p/c","alive":false,"adj":null}`,
		`PWRESULT {"scenario":"s1","kind":"proc","name":"tail","pid":106,"role":"hog","cgroup":"/k/p/c","alive":true,"adj":900}`,
		"PWAGENT level=INFO msg=changed",
		"PWKMSG begin s1",
		"3,428,3120043,-;Memory cgroup out of memory: Killed process 101 (app) total-vm:2260kB, anon-rss:4kB, UID:0 pgtables:28kB oom_score_adj:-997",
		"Terminated",
		"PWKMSG end s1",
		"PWEND s1 uptime=5.00",
	}
	p := newParser(ModeK8s, time.Now())
	for _, l := range console {
		p.line(time.Now(), l+"\r")
	}
	r := p.b.Runs["s1"]
	if r == nil || !r.Complete {
		t.Fatalf("run not complete: %+v", r)
	}
	if r.Checks["adj app"] != "-997" || !slices.Equal(r.Metrics["adj-latency-ms"], []int64{30}) {
		t.Errorf("checks %v metrics %v", r.Checks, r.Metrics)
	}
	if !slices.Equal(r.Dead(), []string{"app"}) || !slices.Equal(r.Survived(), []string{"tail"}) {
		t.Errorf("dead %v survived %v", r.Dead(), r.Survived())
	}
	if !slices.Equal(r.Killed(), []string{"app"}) || len(r.Kmsg) != 1 || len(r.AgentLog) != 1 {
		t.Errorf("killed %v kmsg %q agent %q", r.Killed(), r.Kmsg, r.AgentLog)
	}
	if r.Duration != 2500*time.Millisecond {
		t.Errorf("duration %s", r.Duration)
	}
}

// TestHostLoadBound: the watcher keeps the highest load it read, and the
// heartbeat bound loosens only on an overcommitted host.
func TestHostLoadBound(t *testing.T) {
	t.Setenv("PWVM_MAX_HB_GAP_MS", "")
	path := filepath.Join(t.TempDir(), "loadavg")
	if err := os.WriteFile(path, []byte("0.50 0.40 0.30 1/100 42\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := watchHostLoad(ctx, path, 10*time.Millisecond)
	if got := h.Max(); got != 0.5 {
		t.Fatalf("first sample %v, want 0.5", got)
	}
	if err := os.WriteFile(path, []byte("27.25 9 3 5/300 99\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for h.Max() != 27.25 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := os.WriteFile(path, []byte("1.00 9 3 5/300 99\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if got := h.Max(); got != 27.25 {
		t.Fatalf("max %v, want 27.25 kept after the load fell", got)
	}
	quiet := float64(runtime.NumCPU())
	if b, why := maxGapMS(quiet); b != 1000 {
		t.Errorf("load %v: bound %d (%s), want 1000", quiet, b, why)
	}
	busy := quiet + 3
	if b, why := maxGapMS(busy); b != loadedGapMS || !strings.Contains(why, "overcommitted") {
		t.Errorf("load %v: bound %d (%s), want %d", busy, b, why, loadedGapMS)
	}
	if b, why := maxGapMS(27.25 * quiet); b != 0 || !strings.Contains(why, "saturated") {
		t.Errorf("load %v: bound %d (%s), want 0 (not judged) naming the load", 27.25*quiet, b, why)
	}
	t.Setenv("PWVM_MAX_HB_GAP_MS", "1500")
	if b, _ := maxGapMS(27.25); b != 1500 {
		t.Errorf("PWVM_MAX_HB_GAP_MS=1500: bound %d", b)
	}
	var none *hostLoad
	if none.Max() != 0 {
		t.Error("nil watcher: want 0")
	}
}
