package agent

import (
	"bufio"
	"io"
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

	"podwarden/internal/policy"
)

// scrapeSeries GETs /metrics from srv as Prometheus would and returns the
// lines of metric name.
func scrapeSeries(t *testing.T, srv *httptest.Server, name string) []string {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %s: %s", resp.Status, b)
	}
	var out []string
	for sc := bufio.NewScanner(resp.Body); sc.Scan(); {
		if strings.HasPrefix(sc.Text(), name+"{") {
			out = append(out, sc.Text())
		}
	}
	return out
}

// scrapeValue returns the value of the unlabelled series name.
func scrapeValue(t *testing.T, srv *httptest.Server, name string) (float64, bool) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for sc := bufio.NewScanner(resp.Body); sc.Scan(); {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

func hasPod(lines []string, ns, pod string) bool {
	for _, l := range lines {
		if strings.Contains(l, `namespace="`+ns+`"`) && strings.Contains(l, `pod="`+pod+`"`) {
			return true
		}
	}
	return false
}

// TestLiveGonePodSeriesAreDeleted: two pods on the real cgroup tree each
// have a real OOM kill; one pod then goes (the runtime forgets it, its
// cgroups are removed). Over HTTP, the gone pod's series is still scraped
// once it has gone (its last increment is seen), then disappears after the
// grace; the live pod's stays in every scrape. Before, every pod ever
// OOM-killed kept its series for the life of the agent.
func TestLiveGonePodSeriesAreDeleted(t *testing.T) {
	h := newCRIHost(t)
	h.mkdir(h.prefix + "/kubepods")
	goneCg := h.pod("batch-1", "jobs", "1c2d7e1a-3b4f-4a5e-8d6c-7f8091a2b3c4")
	liveCg := h.pod("notebook-0", "users", "2c2d7e1a-3b4f-4a5e-8d6c-7f8091a2b3c4")
	const grace = 2 * time.Second
	reg := prometheus.NewPedanticRegistry()
	pol := policy.Default()
	pol.Protected = nil
	a, err := New(Config{Policy: pol, Proc: h.proc, Cgroups: h.cg, Runtime: h.client, Metrics: newMetrics(reg, grace),
		KernelLog: SourceMemoryEvents, FastInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// The handler the agent serves /metrics with (cmd/podwarden-agent).
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{DisableCompression: true}))
	defer srv.Close()
	h.run(a)
	waitFor(t, 30*time.Second, "targets found", func() bool { return h.targetCount(a) == 2 })
	// Let a fast pass read the counters before the kills.
	time.Sleep(500 * time.Millisecond)
	h.oomIn(goneCg)
	h.oomIn(liveCg)
	const metric = "podwarden_oom_kills_total"
	waitFor(t, 60*time.Second, "both kills counted", func() bool {
		s := scrapeSeries(t, srv, metric)
		return hasPod(s, "jobs", "batch-1") && hasPod(s, "users", "notebook-0")
	})

	// The pod goes as the kubelet removes it: out of the runtime, then
	// its cgroups.
	rs := h.rt.RuntimeService
	ctx := t.Context()
	cs, err := rs.ListContainers(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	gone := goneCg[strings.LastIndexByte(goneCg, '/')+1:]
	for _, c := range cs {
		if c.Id == gone {
			if err := rs.RemoveContainer(ctx, c.Id); err != nil {
				t.Fatal(err)
			}
			if err := rs.RemovePodSandbox(ctx, c.PodSandboxId); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, cg := range []string{goneCg, goneCg[:strings.LastIndexByte(goneCg, '/')]} {
		if err := os.Remove(h.cg.Dir(cg)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "target dropped", func() bool { return h.targetCount(a) == 1 })
	if s := scrapeSeries(t, srv, metric); !hasPod(s, "jobs", "batch-1") {
		t.Fatalf("the gone pod's series vanished before a scrape returned it:\n%s", strings.Join(s, "\n"))
	}
	waitFor(t, 60*time.Second, "gone pod's series deleted", func() bool {
		s := scrapeSeries(t, srv, metric)
		if !hasPod(s, "users", "notebook-0") {
			t.Fatalf("the live pod's series went:\n%s", strings.Join(s, "\n"))
		}
		return !hasPod(s, "jobs", "batch-1")
	})
	for range 3 {
		if s := scrapeSeries(t, srv, metric); hasPod(s, "jobs", "batch-1") || !hasPod(s, "users", "notebook-0") {
			t.Fatalf("after the grace:\n%s", strings.Join(s, "\n"))
		}
	}

	// The watcher's count is published: one watch per directory of the
	// hierarchy it follows (the host's other cgroups may come and go).
	waitFor(t, 30*time.Second, "podwarden_cgroup_watches published", func() bool {
		v, ok := scrapeValue(t, srv, "podwarden_cgroup_watches")
		return ok && v > 0
	})
	v, _ := scrapeValue(t, srv, "podwarden_cgroup_watches")
	dirs := 0
	_ = filepath.WalkDir(h.cg.Dir("/"), func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs++
		}
		return nil
	})
	if v > float64(dirs+64) {
		t.Errorf("podwarden_cgroup_watches = %v for %d directories", v, dirs)
	}
	t.Logf("podwarden_cgroup_watches = %v, %d directories in %s", v, dirs, h.cg.Dir("/"))
}
