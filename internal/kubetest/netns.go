package kubetest

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// PodRange is a range IsolatedNetwork can make local: 198.18.0.0/15 is
// set aside for benchmarking networks (RFC 2544), so no real network uses
// it, and the API server's pod proxy accepts it (it refuses loopback and
// link-local pod IPs: "address not allowed").
const PodRange = "198.18.0.0/16"

const netnsEnv = "PODWARDEN_KUBETEST_NETNS"

// IsolatedNetwork runs the calling top-level test again, in a network
// namespace of its own in which loopback is up and every address of cidr
// is local ("ip route add local CIDR dev lo"): servers there can listen on
// thousands of pod IPs, the API server started there proxies to them, and
// no packet leaves the namespace, which ends with the test.
//
// In the test as go test started it, IsolatedNetwork waits for the copy,
// passes its output on, fails or skips as it did, and returns false: the
// caller returns. In the copy it returns true. It skips without root
// (CAP_SYS_ADMIN for the namespace) or without ip(8).
func IsolatedNetwork(t *testing.T, cidr string) bool {
	t.Helper()
	if os.Getenv(netnsEnv) == t.Name() {
		for _, args := range [][]string{{"link", "set", "lo", "up"}, {"route", "add", "local", cidr, "dev", "lo"}} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("ip %s in the test's network namespace: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		return true
	}
	if testing.Short() {
		t.Skip("-short: not starting a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip(8) (iproute2) not installed: no network namespace for the test")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatalf("finding the test binary: %v", err)
	}
	// -test.v always: a skip is told only in verbose output.
	args := []string{"-test.run=^" + regexp.QuoteMeta(t.Name()) + "$", "-test.count=1", "-test.v=true"}
	if f := flag.Lookup("test.timeout"); f != nil {
		args = append(args, "-test.timeout="+f.Value.String())
	}
	cmd := exec.CommandContext(t.Context(), self, args...)
	cmd.Env = append(os.Environ(), netnsEnv+"="+t.Name())
	var out bytes.Buffer
	cmd.Stdout = io.MultiWriter(os.Stdout, &out)
	cmd.Stderr = io.MultiWriter(os.Stderr, &out)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	switch {
	case err != nil && cmd.ProcessState == nil:
		t.Skipf("cannot start the test in a new network namespace (needs root): %v", err)
	case err != nil:
		t.Fatalf("%s in its network namespace: %v (its output is above)", t.Name(), err)
	case strings.Contains(out.String(), "--- SKIP: "+t.Name()):
		t.Skipf("%s skipped in its network namespace (the reason is above)", t.Name())
	}
	return false
}

// ProcessCPU is the user and system CPU time process pid has used so far,
// from /proc/PID/stat.
func ProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading CPU time of process %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces; the fields after its
	// closing parenthesis start with the state (field 3).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("reading CPU time of process %d: no ')' in /proc/%d/stat", pid, pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("reading CPU time of process %d: %d fields after the name in /proc/%d/stat", pid, len(f), pid)
	}
	var ticks int64
	for _, s := range f[11:13] { // utime and stime, fields 14 and 15
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("reading CPU time of process %d: %w", pid, err)
		}
		ticks += n
	}
	// USER_HZ is 100 on every Linux architecture Go builds for.
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}
