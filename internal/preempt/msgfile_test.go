package preempt

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"podwarden/internal/procfs"
)

// chartCaps are the capabilities deploy/helm/podwarden gives the agent
// with preempt on and kernelLog on (its values' capabilities.add, then
// what daemonset.yaml adds), without SYS_PTRACE. Kept by hand: if the
// chart changes, change this.
var chartCaps = []uintptr{unix.CAP_SYS_RESOURCE, unix.CAP_DAC_OVERRIDE, unix.CAP_NET_ADMIN, unix.CAP_SYSLOG, unix.CAP_KILL, unix.CAP_IPC_LOCK}

// withCaps runs fn on a thread of this process that holds exactly caps,
// as uid 0: the agent's container. Capabilities are per thread, so the
// thread is locked and never unlocked: it exits with the goroutine
// rather than go back to the pool with fewer capabilities. A capability
// this process lacks itself (this host withholds SYS_RESOURCE) is left
// out and logged: none of the chart's but SYS_PTRACE takes part in the
// ptrace check.
func withCaps(t *testing.T, caps []uintptr, fn func() error) error {
	t.Helper()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var have [2]unix.CapUserData
	if err := unix.Capget(&hdr, &have[0]); err != nil {
		t.Fatal(err)
	}
	var data [2]unix.CapUserData
	for _, c := range caps {
		if have[c/32].Permitted&(1<<(c%32)) == 0 {
			t.Logf("capability %d: this process does not have it, left out", c)
			continue
		}
		data[c/32].Effective |= 1 << (c % 32)
		data[c/32].Permitted |= 1 << (c % 32)
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			done <- fmt.Errorf("capset: %w", err)
			return
		}
		done <- fn()
	}()
	return <-done
}

// startProc starts sleep as a process of the given uid (a container
// process of another user, or root with a container's capabilities) and
// returns it with its start time.
func startProc(t *testing.T, proc procfs.FS, uid uint32) (*exec.Cmd, procRef) {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	p, err := proc.Read(cmd.Process.Pid, procfs.FieldStat)
	if err != nil {
		t.Fatal(err)
	}
	return cmd, procRef{pid: p.PID, start: p.StartTime}
}

// TestMessageFileWithChartCaps writes the message file into real
// processes' /proc/PID/root from a thread holding exactly the chart's
// capabilities. Without SYS_PTRACE the kernel refuses both a process of
// another uid (a Jupyter user, uid 1000) and a root process with the
// capabilities a container keeps: that was the old chart, "open
// /proc/PID/root: permission denied". With it, both are written. The
// processes run in this host's root, so the file lands in a temporary
// directory of this host.
func TestMessageFileWithChartCaps(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it starts processes of other uids and drops capabilities")
	}
	proc, err := procfs.NewFS("/proc")
	if err != nil {
		t.Fatal(err)
	}
	withPtrace := append([]uintptr{unix.CAP_SYS_PTRACE}, chartCaps...)
	tests := []struct {
		name    string
		uid     uint32
		caps    []uintptr
		written bool
	}{
		{"other uid, old chart", 1000, chartCaps, false},
		{"other uid, chart", 1000, withPtrace, true},
		{"root with more capabilities, old chart", 0, chartCaps, false},
		{"root with more capabilities, chart", 0, withPtrace, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			name := filepath.Join(dir, "podwarden-oom.txt")
			_, ref := startProc(t, proc, tc.uid)
			err := withCaps(t, tc.caps, func() error { return writeMessage(proc, ref, name, "ended\n") })
			b, rerr := os.ReadFile(name)
			if tc.written {
				if err != nil || string(b) != "ended\n" {
					t.Fatalf("writeMessage: %v; file %q, %v", err, b, rerr)
				}
				return
			}
			if !errors.Is(err, unix.EACCES) || !strings.Contains(err.Error(), "CAP_SYS_PTRACE") {
				t.Errorf("writeMessage without SYS_PTRACE: %v, want permission denied naming CAP_SYS_PTRACE", err)
			}
			if rerr == nil {
				t.Errorf("file written without SYS_PTRACE")
			}
		})
	}
}

// TestMessageFileBoundToProcess: the file is written through the process
// chosen minutes earlier or not at all. A pid whose start time differs
// (a reused pid: faked here by a wrong start time, since the kernel cannot
// be made to reuse a pid on demand) and a process that has exited are
// refused, and nothing is written. The old code wrote through whatever
// held the pid.
func TestMessageFileBoundToProcess(t *testing.T) {
	proc, err := procfs.NewFS("/proc")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	name := filepath.Join(dir, "podwarden-oom.txt")

	_, ref := startProc(t, proc, 0)
	reused := ref
	reused.start++
	err = writeMessage(proc, reused, name, "x\n")
	if !errors.Is(err, procfs.ErrPIDReused) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("start time differs: %v, want ErrPIDReused", err)
	}

	cmd, gone := startProc(t, proc, 0)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if err := writeMessage(proc, gone, name, "x\n"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("exited process: %v, want not exist", err)
	}
	if err := writeMessage(proc, procRef{}, name, "x\n"); err == nil {
		t.Error("no process: written")
	}
	if _, err := os.Stat(name); err == nil {
		t.Fatal("a message file was written through a process that was not the one chosen")
	}
	if err := writeMessage(proc, ref, name, "ended\n"); err != nil {
		t.Fatalf("the chosen process: %v", err)
	}
}
