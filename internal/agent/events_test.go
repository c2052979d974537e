package agent

import (
	"bufio"
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"podwarden/internal/kubeevent"
	"podwarden/internal/policy"
)

// TestEventsDroppedOverMetrics: with an API server that accepts and never
// answers, the agent's OOM reports never wait, and every one that does
// not become an Event shows in podwarden_reports_dropped_total, read over
// HTTP as Prometheus reads it: queue_full while the outbox is stuck, then
// what drained as the call failed. Reports early action posts through the
// same outbox are counted in the same series.
func TestEventsDroppedOverMetrics(t *testing.T) {
	stop := make(chan struct{})
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(stop); api.Close() })
	dir := t.TempDir()
	ca, token := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "token")
	mustOK(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw}), 0o600))
	mustOK(t, os.WriteFile(token, []byte("test-token\n"), 0o600))
	rep, err := kubeevent.NewReporter(t.Context(), kubeevent.Config{Host: api.URL, TokenFile: token, CAFile: ca}, "node-a", nil)
	mustOK(t, err)
	t.Cleanup(rep.Close)

	n := newNode(t)
	pol := policy.Default()
	pol.CgroupSelector = "/kubepods/pod*/*"
	cfg := n.config(t, pol)
	reg := prometheus.NewRegistry()
	cfg.Metrics, cfg.Reporter = NewMetrics(reg), rep
	a, err := New(cfg)
	mustOK(t, err)
	metrics := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(metrics.Close)

	// One report per pod, so only the queue's bound applies (a storm in
	// one pod is capped per pod: kubeevent's TestOutboxStormIsFair).
	const posts = 1000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range posts - 1 {
			a.post(kubeevent.OOM{PodUID: "uid-" + strconv.Itoa(i), Namespace: "users", PodName: "nb-" + strconv.Itoa(i), Comm: "python", PID: 100 + i}, false)
		}
		// As early action posts, on the engine's goroutine.
		if err := rep.PodPressureKill(context.Background(), kubeevent.PressureKill{PodUID: "u", Namespace: "users", PodName: "nb-x"}); err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the agent waited for a hung API server")
	}
	var got map[string]int
	waitFor(t, 2*time.Minute, "every report counted as dropped", func() bool {
		got = scrapeDropped(t, metrics.URL)
		sum := 0
		for _, v := range got {
			sum += v
		}
		return sum == posts
	})
	t.Logf("podwarden_reports_dropped_total: %v", got)
	if got["queue_full"] == 0 || got["api_error"] == 0 {
		t.Errorf("dropped %v: want queue_full while the call hung and api_error when it timed out", got)
	}
	if _, body := healthz(t, a); !strings.Contains(body, "kube-apiserver") {
		t.Errorf("/healthz %q does not name the API server", body)
	}
}

// scrapeDropped reads podwarden_reports_dropped_total by reason from the
// text exposition at url.
func scrapeDropped(t *testing.T, url string) map[string]int {
	t.Helper()
	resp, err := http.Get(url)
	mustOK(t, err)
	defer resp.Body.Close()
	out := map[string]int{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), `podwarden_reports_dropped_total{reason="`)
		if !ok {
			continue
		}
		reason, val, _ := strings.Cut(rest, `"} `)
		v, err := strconv.ParseFloat(val, 64)
		mustOK(t, err)
		out[reason] = int(v)
	}
	mustOK(t, sc.Err())
	return out
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestDropReasonsDocumented: the metric's help names every reason the
// outbox drops for, so a new one is not an unexplained label value.
func TestDropReasonsDocumented(t *testing.T) {
	ch := make(chan *prometheus.Desc, 1)
	NewMetrics(nil).ReportsDropped.Describe(ch)
	help := (<-ch).String()
	for _, r := range kubeevent.DropReasons {
		if !strings.Contains(help, r.String()+" (") {
			t.Errorf("podwarden_reports_dropped_total's help does not explain %q: %s", r, help)
		}
	}
}
