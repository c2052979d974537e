package preempt

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"podwarden/internal/target"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// TestGonePodKillSeries: a pod that is no longer a target keeps its kill
// series for the next scrape (the last increment is seen), then loses
// them after the grace; a live pod's, a same-named pod's in another
// namespace and the refusals (no pod label) stay. Read over HTTP as
// Prometheus reads them.
func TestGonePodKillSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg, 200*time.Millisecond)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	scrape := func() string {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	ada := Target{Ref: target.Ref{Namespace: "users", PodName: "nb-ada", Cgroup: "/a"}}
	bob := Target{Ref: target.Ref{Namespace: "users", PodName: "nb-bob", Cgroup: "/b"}}
	otherAda := Target{Ref: target.Ref{Namespace: "other", PodName: "nb-ada", Cgroup: "/c"}}
	m.setLivePods([]Target{ada, bob, otherAda})
	m.Kills.WithLabelValues("users", "nb-ada", "notebook", "node", "SIGINT").Inc()
	m.Kills.WithLabelValues("users", "nb-bob", "notebook", "node", "SIGINT").Inc()
	m.Kills.WithLabelValues("other", "nb-ada", "notebook", "node", "SIGINT").Inc()
	m.Refusals.WithLabelValues("node", reasonNoGrowth).Inc()

	// users/nb-ada's last kill ended its container: it is gone.
	m.Kills.WithLabelValues("users", "nb-ada", "notebook", "container", "SIGKILL").Inc()
	m.setLivePods([]Target{bob, otherAda})
	if got := scrape(); !strings.Contains(got, `namespace="users",pod="nb-ada",scope="container",signal="SIGKILL"`) {
		t.Fatalf("the scrape right after the pod went lacks its last kill:\n%s", got)
	}
	deadline := time.Now().Add(30 * time.Second)
	var got string
	for {
		got = scrape()
		if !strings.Contains(got, `namespace="users",pod="nb-ada"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("users/nb-ada's series still exported 30 s after it went (grace 200 ms):\n%s", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{`namespace="users",pod="nb-bob"`, `namespace="other",pod="nb-ada"`, `podwarden_preempt_refusals_total{reason="no_growth",scope="node"} 1`} {
		if !strings.Contains(got, want) {
			t.Errorf("a live series went with the gone pod's: no %s in\n%s", want, got)
		}
	}
}
