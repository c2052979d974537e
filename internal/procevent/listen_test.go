package procevent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"podwarden/internal/streamtest"
)

// helperEnv makes the test binary run listenHelper instead of the tests:
// the namespace test re-executes it inside new namespaces.
const helperEnv = "PROCEVENT_LISTEN_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		listenHelper()
		return
	}
	os.Exit(m.Run())
}

func listenHelper() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := Listen(ctx)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	l.Close()
	fmt.Println("listening")
}

// listenOrSkip subscribes or skips the test when this machine cannot.
func listenOrSkip(t *testing.T, ctx context.Context, rcvBuf int) *Listener {
	t.Helper()
	l, err := listen(ctx, rcvBuf)
	if err != nil {
		t.Skipf("process connector unavailable (needs the host's network, PID and user namespaces; CAP_NET_ADMIN before Linux 6.6): %v", err)
	}
	return l
}

// bootTime is the wall-clock time of CLOCK_MONOTONIC zero, to put kernel
// event timestamps on the clock of Event.Time.
func bootTime(t *testing.T) time.Time {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return time.Now().Add(-time.Duration(ts.Nano()))
}

func TestLiveForkExecExit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := listenOrSkip(t, ctx, rcvBuf)
	defer l.Close()
	boot := bootTime(t)

	cmd := exec.Command("sh", "-c", "exec sleep 0.2")
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()

	var fork, exit *Event
	var execs []Event
	for exit == nil {
		select {
		case ev, ok := <-l.Events():
			if !ok {
				t.Fatalf("events closed early: %v", l.Err())
			}
			if ev.TGID != pid {
				continue
			}
			switch ev.Kind {
			case Fork:
				fork = &ev
			case Exec:
				execs = append(execs, ev)
			case Exit:
				exit = &ev
			}
		case <-ctx.Done():
			t.Fatalf("for pid %d saw fork %v, execs %v, exit %v before the timeout", pid, fork, execs, exit)
		}
	}
	if err := <-waitErr; err != nil {
		t.Fatal(err)
	}
	if fork == nil {
		t.Fatal("no fork event")
	}
	if fork.PID != pid || fork.ParentTGID != os.Getpid() {
		t.Errorf("fork = %+v, want child %d of %d", *fork, pid, os.Getpid())
	}
	// Go's fork execs sh, then sh execs sleep.
	if len(execs) != 2 || execs[0].PID != pid {
		t.Errorf("execs = %+v, want two for %d", execs, pid)
	}
	if exit.PID != pid || exit.ExitStatus != 0 {
		t.Errorf("exit = %+v, want pid %d status 0", *exit, pid)
	}
	if len(execs) > 0 && !(fork.Timestamp < execs[0].Timestamp && execs[len(execs)-1].Timestamp < exit.Timestamp) {
		t.Errorf("kernel timestamps out of order: fork %v, execs %+v, exit %v", fork.Timestamp, execs, exit.Timestamp)
	}
	delay := func(ev Event) time.Duration { return ev.Time.Sub(boot.Add(ev.Timestamp)) }
	t.Logf("kernel event to receipt: fork %v, exec %v, exit %v; cmd.Start to fork receipt %v",
		delay(*fork), delay(execs[0]), delay(*exit), fork.Time.Sub(start))
}

// BenchmarkForkToEvent reports how long fork events take from the kernel
// to Events, for short-lived children started back to back.
func BenchmarkForkToEvent(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := Listen(ctx)
	if err != nil {
		b.Skipf("process connector unavailable: %v", err)
	}
	defer l.Close()
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	boot := time.Now().Add(-time.Duration(ts.Nano()))
	var delays []time.Duration
	for b.Loop() {
		cmd := exec.Command("/bin/true")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		for ev := range l.Events() {
			if ev.Kind == Fork && ev.PID == cmd.Process.Pid {
				delays = append(delays, ev.Time.Sub(boot.Add(ev.Timestamp)))
				break
			}
		}
		_ = cmd.Wait()
	}
	slices.Sort(delays)
	b.ReportMetric(float64(delays[len(delays)/2].Microseconds()), "µs-median-delay")
	b.ReportMetric(float64(delays[len(delays)*99/100].Microseconds()), "µs-p99-delay")
}

// forkStorm starts a shell that forks n short processes: 3n events.
func forkStorm(t *testing.T, n int) {
	t.Helper()
	out, err := exec.Command("sh", "-c", fmt.Sprintf("i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done", n)).CombinedOutput()
	if err != nil {
		t.Fatalf("fork storm: %v: %s", err, out)
	}
}

// TestOverrunIsCountedAndRecovered overflows a tiny socket buffer while
// the channel is full: the kernel must report the overrun (Lost), and the
// listener must deliver events again once the backlog is read. The
// connector reports every fork on the host, and a busy host never goes
// quiet, so recovery is shown by the fork of a marker process of our own
// coming through, not by a quiet window; markers are started until one
// does, since one started while the socket is still full is dropped too.
func TestOverrunIsCountedAndRecovered(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := listenOrSkip(t, ctx, 4096)
	defer l.Close()
	forkStorm(t, 800) // 2400 events: beyond the channel and the socket

	read, markers := 0, 0
	var marker *exec.Cmd
	next := time.NewTicker(100 * time.Millisecond)
	defer next.Stop()
	startMarker := func() {
		if marker != nil {
			_ = marker.Wait()
		}
		marker = exec.Command("/bin/true")
		if err := marker.Start(); err != nil {
			t.Fatal(err)
		}
		markers++
	}
	defer func() {
		if marker != nil {
			_ = marker.Wait()
		}
	}()
	for {
		select {
		case ev, ok := <-l.Events():
			if !ok {
				t.Fatalf("events closed: %v", l.Err())
			}
			read++
			if marker != nil && ev.Kind == Fork && ev.PID == marker.Process.Pid {
				if l.Lost() == 0 {
					t.Fatalf("Lost = 0 after 2400 events into a %d-event channel and a 4 KiB socket (read %d)", eventBuf, read)
				}
				t.Logf("read %d events, %d overruns; marker %d came through", read, l.Lost(), markers)
				return
			}
		case <-next.C:
			startMarker()
		case <-ctx.Done():
			t.Fatalf("no marker fork event after the overrun (read %d events, %d markers, Lost %d)", read, markers, l.Lost())
		}
	}
}

// TestCloseWithBlockedConsumer: Close must not hang while the receive
// goroutine is blocked handing an event to a consumer that stopped reading.
func TestCloseWithBlockedConsumer(t *testing.T) {
	before := runtime.NumGoroutine()
	l := listenOrSkip(t, context.Background(), rcvBuf)
	forkStorm(t, 500) // 1500 events: the channel holds 1024
	if n := streamtest.CloseBlocked(t, l); n > eventBuf {
		t.Errorf("drained %d events after Close, the channel holds %d", n, eventBuf)
	}
	streamtest.WaitGoroutines(t, before)
}

func TestCancelEndsTheListener(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	l := listenOrSkip(t, ctx, rcvBuf)
	cancel()
	streamtest.Cancelled(t, l, l.done)
	streamtest.WaitGoroutines(t, before)
}

func TestListenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l, err := Listen(ctx)
	if err == nil {
		l.Close()
		t.Fatal("Listen with a cancelled context succeeded")
	}
	if !errors.Is(err, context.Canceled) && !strings.Contains(err.Error(), "host network namespace") {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// TestListenOutsideHostNamespaces runs Listen in a new network namespace
// (no connector: ECONNREFUSED) and a new PID namespace (the kernel ignores
// the request): both must fail with an error that says why.
func TestListenOutsideHostNamespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("creating namespaces needs root")
	}
	tests := map[string]struct {
		flags uintptr
		want  string
	}{
		"network namespace": {syscall.CLONE_NEWNET, "host network namespace"},
		"PID namespace":     {syscall.CLONE_NEWPID, "initial user and PID namespaces"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), helperEnv+"=1")
			cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: tt.flags}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Skipf("cannot run in a new %s: %v: %s", name, err, out)
			}
			if !strings.Contains(string(out), "error:") || !strings.Contains(string(out), tt.want) {
				t.Fatalf("in a new %s Listen said %q, want an error mentioning %q", name, out, tt.want)
			}
			t.Logf("%s", strings.TrimSpace(string(out)))
		})
	}
}

// TestListenUnprivileged runs Listen as nobody. Linux 6.6 and later let
// anyone join the proc events group (cn_bind); older kernels refuse the
// bind, and the error must say what is missing.
func TestListenUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("switching to nobody needs root")
	}
	// The test binary sits in a private build directory: give nobody a
	// copy it can execute.
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} { // t.TempDir makes both 0700
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "procevent.test")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Skipf("cannot run as nobody: %v: %s", err, out)
	}
	got := strings.TrimSpace(string(out))
	if got != "listening" && !strings.Contains(got, "CAP_NET_ADMIN") {
		t.Fatalf("as nobody Listen said %q, want success or an error naming CAP_NET_ADMIN", got)
	}
	t.Logf("as nobody: %s", got)
}
