package preempt

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestForgetPod: a gone pod's kill series go, another pod's in the same
// namespace and a same-named pod's in another stay.
func TestForgetPod(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.Kills.WithLabelValues("users", "nb-ada", "notebook", "node", "SIGINT").Inc()
	m.Kills.WithLabelValues("users", "nb-ada", "notebook", "container", "SIGKILL").Inc()
	m.Kills.WithLabelValues("users", "nb-bob", "notebook", "node", "SIGINT").Inc()
	m.Kills.WithLabelValues("other", "nb-ada", "notebook", "node", "SIGINT").Inc()
	m.Refusals.WithLabelValues("node", reasonNoGrowth).Inc()
	if n := m.ForgetPod("users", "nb-ada"); n != 2 {
		t.Errorf("ForgetPod deleted %d series, want 2", n)
	}
	if n := testutil.CollectAndCount(reg, "podwarden_preempt_kills_total"); n != 2 {
		t.Errorf("%d kill series left, want nb-bob's and other/nb-ada's", n)
	}
	if n := testutil.CollectAndCount(reg, "podwarden_preempt_refusals_total"); n != 1 {
		t.Errorf("%d refusal series, want 1 (no pod label: nothing to forget)", n)
	}
}
