package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"podwarden/internal/metricsserver"
)

// Issue 20: 6,099 keep-alive connections that each sent one GET /metrics
// and then idled took the agent from 17 MB past the chart's 128 MiB limit
// in 2.9 s. Here 6,000 such connections, on real loopback sockets, must
// leave the server answering a fresh scrape by making room (an eviction),
// not once the idle ones time out, and the process (server and the 6,000
// clients) up less than 64 MiB at its peak. How long the scrape took is
// logged (milliseconds on an idle machine; the issue asked for under
// 2 s), not asserted: a busy machine stretches it, the design does not.
func TestMetricsSurviveIdleConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 6,000 connections")
	}
	const idle = 6000
	raiseNoFile(t, 2*idle+1000)
	addr := startMetrics(t, metricsserver.DefaultOptions("127.0.0.1:0"), nil)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	scrape := func() (int, string, error) {
		resp, err := client.Get("http://" + addr + "/metrics")
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	if code, _, err := scrape(); code != http.StatusOK {
		t.Fatalf("first scrape: %d %v", code, err)
	}
	resetPeakRSS(t)
	before := rssKiB(t, "VmRSS")

	conns := make([]net.Conn, idle)
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	// What the crowd saw: 200, another answer (503 from the bound on
	// gathers in flight), or the connection closed by the bound.
	var ok, other, cut atomic.Int64
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= idle {
					return
				}
				c, err := net.DialTimeout("tcp", addr, 30*time.Second)
				if err != nil {
					t.Errorf("connection %d: %v", i, err)
					return
				}
				conns[i] = c
				if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: agent\r\n\r\n"); err != nil {
					cut.Add(1) // already closed by the bound
					continue
				}
				// Read the status line, so the request was served and the
				// connection is idle, then keep it open and say nothing.
				_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
				line, err := bufio.NewReaderSize(c, 64).ReadString('\n')
				switch {
				case err != nil:
					cut.Add(1)
				case strings.HasPrefix(line, "HTTP/1.1 200 "):
					ok.Add(1)
				default:
					other.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	start := time.Now()
	code, body, err := scrape()
	took := time.Since(start)
	if code != http.StatusOK || !strings.Contains(body, "podwarden_protected_containers") {
		t.Fatalf("fresh scrape after %d idle connections: %d %v %.200q", idle, code, err, body)
	}
	if took >= metricsserver.DefaultIdleTimeout {
		t.Errorf("fresh scrape took %s with %d idle connections open: it waited for them to time out (%s), the bound made no room", took, idle, metricsserver.DefaultIdleTimeout)
	}
	if !regexp.MustCompile(`(?m)^podwarden_metrics_connections_closed_total\{reason="evicted"\} [1-9]`).MatchString(body) {
		t.Errorf("the evictions are not in the metrics:\n%s", grepLines(body, "podwarden_metrics_connections"))
	}
	peak := rssKiB(t, "VmHWM")
	t.Logf("%d connections: %d answered 200, %d otherwise, %d closed unanswered; fresh scrape %s; RSS %d KiB before, peak %d KiB (+%.1f MiB)",
		idle, ok.Load(), other.Load(), cut.Load(), took.Round(time.Millisecond), before, peak, float64(peak-before)/1024)
	if up := peak - before; up >= 64<<10 && !raceBuild {
		t.Errorf("RSS went up %d KiB with %d idle connections, want < 64 MiB", up, idle)
	}
}

// raiseNoFile lifts the soft open-file limit of the test process to n (Go
// already raises it to the hard limit at start; this says so when the
// hard limit is too low).
func raiseNoFile(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	if lim.Max < n {
		lim.Max = n // works as root with CAP_SYS_RESOURCE only
	}
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("need %d open files (RLIMIT_NOFILE): %v", n, err)
	}
}

// resetPeakRSS resets VmHWM, so it is this test's peak, not an earlier
// test's (proc(5), clear_refs 5).
func resetPeakRSS(t *testing.T) {
	t.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatalf("resetting the peak RSS: %v", err)
	}
}

func rssKiB(t *testing.T, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("/proc/self/status %s: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("/proc/self/status has no %s", field)
	return 0
}

func grepLines(text, substr string) string {
	var out []string
	for line := range strings.SplitSeq(text, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
