package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"podwarden/internal/termsafe"
)

// What a hostile pod can name things: a process (PR_SET_NAME, 15 bytes),
// its arguments, and, through the kubelet's pod log directory, its pod.
const (
	hostileComm = "\x1b[2J\u202eEVIL\x9b" // clear screen, right-to-left override, a raw 8-bit CSI
	hostileArg  = "\x1b]0;pwned\x07\u2066\t\nx"
	hostilePod  = "\x1b[31mevil\u202epod\u009b"
	hostileUID  = "5b1f0c4e-7a1d-4c39-9f0e-1c2d3e4f5a61"
	hostileCID  = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa99887766554433221100"
)

// jsonComm is hostileComm as JSON can carry it: true but for the byte that
// is not UTF-8, which encoders make U+FFFD.
var jsonComm = strings.ToValidUTF8(hostileComm, "\ufffd")

// hostileEnv makes the test binary a hostile process instead of running
// the tests (hostileChild).
const hostileEnv = "PODWARDEN_TEST_HOSTILE_COMM"

func init() {
	name := os.Getenv(hostileEnv)
	if name == "" {
		return
	}
	// PR_SET_NAME names the calling thread; /proc/PID/stat shows the main
	// thread's, which init runs on once locked.
	runtime.LockOSThread()
	p, err := unix.BytePtrFromString(name)
	if err == nil {
		err = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafePointer(p)), 0, 0, 0)
	}
	if err != nil {
		fmt.Println("prctl:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	for {
		time.Sleep(time.Hour) // until the test kills it
	}
}

// hostileChild starts this test binary as a process named hostileComm
// with hostileArg in its command line, in cgroup (a real v1 memory cgroup
// of this host), at oom_score_adj 1000 so it is the first victim.
func hostileChild(t *testing.T, cgDir string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", hostileArg)
	cmd.Env = append(os.Environ(), hostileEnv+"="+hostileComm)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid := cmd.Process.Pid
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
		t.Fatalf("hostile child: %q", line)
	}
	if err := os.WriteFile(filepath.Join(cgDir, "cgroup.procs"), []byte(fmt.Sprint(pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid), []byte("1000"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The name is the one the kernel keeps (15 bytes at most).
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSuffix(string(comm), "\n") != hostileComm {
		t.Fatalf("child comm %q (%v), want %q", comm, err, hostileComm)
	}
	return pid
}

// rawControl finds what a terminal would act on, on its own terms (not
// termsafe's): a control byte other than the newline, DEL, a C1 control,
// a bidi mark or invalid UTF-8. It returns the line, quoted, or "".
func rawControl(s string) string {
	for _, line := range strings.Split(s, "\n") {
		for i, r := range line {
			bad := r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f ||
				r == utf8.RuneError && !strings.HasPrefix(line[i:], "\ufffd") ||
				strings.ContainsRune("\u061c\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069", r)
			if bad {
				return fmt.Sprintf("%q", line)
			}
		}
	}
	return ""
}

// TestHostileNamesAreEscaped names a real process in a real cgroup of this
// host with control characters and bidi overrides, names its pod the same
// way, and walks every text output of ps and victims: none may carry a raw
// control byte, each shows the name as dmesg would (\x1b), and JSON and
// YAML carry the true string. (The old printers wrote the raw bytes: the
// admin's screen cleared.)
func TestHostileNamesAreEscaped(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a cgroup of this host's tree")
	}
	memRoot := "/sys/fs/cgroup/memory"
	if _, err := os.Stat(filepath.Join(memRoot, "cgroup.procs")); err != nil {
		t.Skip("no cgroup v1 memory hierarchy (the qemu suite covers v2)")
	}
	// Even the cgroup path is hostile: a directory name may hold ESC.
	prefix := fmt.Sprintf("/podwarden-cli-test-%d-\x1b[7m", os.Getpid())
	cg := prefix + "/kubepods/burstable/pod" + hostileUID + "/" + hostileCID
	dir := filepath.Join(memRoot, cg)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for d := dir; d != memRoot; d = filepath.Dir(d) {
			_ = os.Remove(d)
		}
	})
	// A limit far above what the child holds, so victims --cgroup has an
	// OOM to predict.
	if err := os.WriteFile(filepath.Join(dir, "memory.limit_in_bytes"), []byte("1073741824"), 0o644); err != nil {
		t.Fatal(err)
	}
	pid := hostileChild(t, dir)
	logDir := t.TempDir()
	if err := os.Mkdir(filepath.Join(logDir, "hub_"+hostilePod+"_"+hostileUID), 0o755); err != nil {
		t.Fatal(err)
	}
	node := []string{"--pod-log-dir", logDir, "-n", "hub"}
	escComm, escPod := termsafe.Escape(hostileComm), termsafe.Escape(hostilePod)
	for _, tc := range []struct {
		args []string
		want []string // escaped forms the output must show
	}{
		{[]string{"ps"}, []string{fmt.Sprintf("[%d] %s: ", pid, escComm)}},
		{[]string{"ps", "--extended"}, []string{escComm, termsafe.Escape(hostileArg)}},
		{[]string{"ps", "-o", "wide"}, []string{"hub/" + escPod, termsafe.Escape(cg), termsafe.Escape(hostileArg)}},
		{[]string{"ps", "-o", "wide", "--no-headers"}, []string{"hub/" + escPod}},
		{[]string{"ps", "-o", "name"}, []string{fmt.Sprintf("process/%d\n", pid)}},
		{[]string{"victims", "--limit", "0"}, []string{"\n1 ", escComm, "hub/" + escPod, termsafe.Escape(cg), "\nnext: "}},
		{[]string{"victims", "--limit", "0", "-o", "wide"}, []string{escComm, "hub/" + escPod, "\nnext: "}},
		{[]string{"victims", "--limit", "0", "--no-headers"}, []string{escComm}},
		{[]string{"victims", "-o", "name"}, []string{fmt.Sprintf("process/%d\n", pid)}},
		{[]string{"victims", "--cgroup", cg}, []string{escComm, "verdict: ", "\nnext: "}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, code := runForTest(t, append(tc.args, node...)...)
			if code != 0 {
				t.Fatalf("code %d: %s", code, errOut)
			}
			if bad := rawControl(out + errOut); bad != "" {
				t.Fatalf("raw control bytes reach the terminal: %s", bad)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	// A cgroup OOM names the hostile process in the verdict itself.
	out, _, _ := runForTest(t, "victims", "--cgroup", cg, "--pod-log-dir", logDir)
	if !regexp.MustCompile(`(?m)^(verdict|PROBLEM): .*` + regexp.QuoteMeta(escComm)).MatchString(out) {
		t.Errorf("the verdict should name the process, escaped:\n%s", out)
	}
	// JSON and YAML carry the true strings, which decode back.
	for _, cmd := range []string{"ps", "victims"} {
		out, errOut, code := runForTest(t, append([]string{cmd, "-o", "json"}, node...)...)
		if code != 0 {
			t.Fatalf("%s -o json: %s", cmd, errOut)
		}
		if bad := rawControl(out); bad != "" {
			t.Fatalf("%s -o json: raw control bytes: %s", cmd, bad)
		}
		var rows []struct {
			PID     int      `json:"pid"`
			Comm    string   `json:"comm"`
			Cmdline []string `json:"cmdline"`
			Pod     string   `json:"pod_name"`
			Cgroup  string   `json:"cgroup"`
		}
		var doc struct {
			Items   json.RawMessage `json:"items"`
			Victims json.RawMessage `json:"victims"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatal(err)
		}
		out = string(doc.Items)
		if cmd == "victims" {
			out = string(doc.Victims)
		}
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range rows {
			if r.PID == pid {
				found = r.Comm == jsonComm && r.Pod == hostilePod && r.Cgroup == cg &&
					(cmd == "victims" || len(r.Cmdline) == 3 && r.Cmdline[2] == hostileArg)
			}
		}
		if !found {
			t.Errorf("%s -o json: no row of pid %d with the true comm, pod, cgroup and argv:\n%s", cmd, pid, out)
		}
		yml, _, _ := runForTest(t, append([]string{cmd, "-o", "yaml"}, node...)...)
		if bad := rawControl(yml); bad != "" || !strings.Contains(yml, `comm: "\u001b[2J\u202eEVIL`) {
			t.Errorf("%s -o yaml: raw bytes %s, or no escaped comm:\n%s", cmd, bad, yml)
		}
	}
}

// TestHostileEventsAreEscaped feeds events a /dev/kmsg dump in which the
// kernel escaped a hostile comm (\x1b...): kmsg decodes it to the true
// bytes, so the text output must escape them again (it printed a real ESC)
// and the JSON carries the true string.
func TestHostileEventsAreEscaped(t *testing.T) {
	src, err := os.ReadFile("../../internal/oomreport/testdata/guest-6.1-v2-container-limit.kmsg")
	if err != nil {
		t.Fatal(err)
	}
	// What /dev/kmsg prints for hostileComm: every byte below ' ' or from
	// 127 up as \xNN.
	var kesc strings.Builder
	for _, c := range []byte(hostileComm) {
		if c < ' ' || c >= 127 || c == '\\' {
			fmt.Fprintf(&kesc, `\x%02x`, c)
		} else {
			kesc.WriteByte(c)
		}
	}
	log := regexp.MustCompile(`\btail\b`).ReplaceAllLiteralString(string(src), kesc.String())
	if !strings.Contains(log, `\x1b[2J`) {
		t.Fatal("fixture has no comm to replace")
	}
	file := filepath.Join(t.TempDir(), "kmsg")
	if err := os.WriteFile(file, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	logDir := t.TempDir()
	if err := os.Mkdir(filepath.Join(logDir, "hub_"+hostilePod+"_"+hostileUID), 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"events", "--file", file, "--pod-log-dir", logDir}
	escComm := termsafe.Escape(hostileComm)
	for _, output := range []string{"text", "json"} {
		out, errOut, code := runForTest(t, append(args, "-o", output)...)
		if code != 0 {
			t.Fatalf("-o %s: code %d: %s", output, code, errOut)
		}
		if bad := rawControl(out + errOut); bad != "" {
			t.Fatalf("-o %s: raw control bytes reach the terminal: %s", output, bad)
		}
		if output == "text" {
			for _, w := range []string{"invoked by " + escComm + " (pid", "Killed " + escComm + " (pid 106", "pod hub/" + termsafe.Escape(hostilePod)} {
				if !strings.Contains(out, w) {
					t.Errorf("text lacks %q:\n%s", w, out)
				}
			}
			continue
		}
		var rep struct {
			Invoker struct{ Comm string }   `json:"invoker"`
			Victims []struct{ Comm string } `json:"victims"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Invoker.Comm != jsonComm || len(rep.Victims) == 0 || rep.Victims[0].Comm != jsonComm {
			t.Errorf("json: want the true comm %q, got %+v", jsonComm, rep)
		}
	}
}
