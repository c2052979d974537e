package podseries

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fixture is a counter labelled as podwarden_oom_kills_total, wrapped in a
// Pruner on a registry, with a clock the test moves.
type fixture struct {
	t     *testing.T
	vec   *prometheus.CounterVec
	p     *Pruner
	reg   *prometheus.Registry
	clock time.Time
}

const grace = 10 * time.Minute

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, reg: prometheus.NewPedanticRegistry(), clock: time.Unix(1e9, 0)}
	f.vec = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kills_total", Help: "Kills."},
		[]string{"namespace", "pod", "container", "kind"})
	f.p = New(f.vec, grace)
	f.p.now = func() time.Time { return f.clock }
	f.reg.MustRegister(f.p)
	return f
}

// scrape gathers as a Prometheus scrape would and returns one
// "namespace/pod/container/kind=value" per series, sorted.
func (f *fixture) scrape() []string {
	f.t.Helper()
	fams, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, fam := range fams {
		for _, m := range fam.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			out = append(out, l["namespace"]+"/"+l["pod"]+"/"+l["container"]+"/"+l["kind"]+"="+
				strconv.FormatFloat(m.GetCounter().GetValue(), 'g', -1, 64))
		}
	}
	slices.Sort(out)
	return out
}

func pods(ps ...Pod) func(func(Pod) bool) { return slices.Values(ps) }

func TestPruner(t *testing.T) {
	a, b, bElsewhere := Pod{"ml", "a"}, Pod{"ml", "b"}, Pod{"other", "b"}
	type step struct {
		after   time.Duration // the clock moves first
		live    []Pod         // nil: SetLive not called
		inc     []string      // "namespace/pod": one kill counted
		scrapes int           // scrapes in this step (the last one is checked)
		want    []string      // checked after the scrapes unless nil; none is empty
	}
	none := []string{}
	tests := map[string][]step{
		"a gone pod's series go after the grace and a scrape; the live and the host's stay": {
			{live: []Pod{a, b}, inc: []string{"ml/a", "ml/b", "/"}, scrapes: 1, want: []string{"//c/k=1", "ml/a/c/k=1", "ml/b/c/k=1"}},
			{live: []Pod{a}, scrapes: 1, want: []string{"//c/k=1", "ml/a/c/k=1", "ml/b/c/k=1"}},
			{after: grace / 2, inc: []string{"ml/b"}, scrapes: 1, want: []string{"//c/k=1", "ml/a/c/k=1", "ml/b/c/k=2"}},
			{after: grace / 2, scrapes: 1, want: []string{"//c/k=1", "ml/a/c/k=1"}},
			{after: 10 * grace, scrapes: 3, want: []string{"//c/k=1", "ml/a/c/k=1"}},
		},
		"the last increment is scraped at least once, however late the scrape": {
			{live: []Pod{a}, inc: []string{"ml/a"}, scrapes: 1, want: []string{"ml/a/c/k=1"}},
			{live: []Pod{}, inc: []string{"ml/a"}},
			{after: grace + time.Second, scrapes: 1, want: []string{"ml/a/c/k=2"}},
			{scrapes: 1, want: []string{"ml/a/c/k=2"}},
			{after: grace, scrapes: 1, want: none},
		},
		"counted after the pod went: exported, then deleted": {
			{live: []Pod{}, inc: []string{"ml/a"}, scrapes: 1, want: []string{"ml/a/c/k=1"}},
			{after: grace, scrapes: 1, want: none},
			{inc: []string{"ml/a"}, scrapes: 1, want: []string{"ml/a/c/k=1"}},
		},
		"a pod back within the grace keeps its count": {
			{live: []Pod{a}, inc: []string{"ml/a"}, scrapes: 1},
			{live: []Pod{}, scrapes: 1},
			{after: grace / 2, live: []Pod{a}, scrapes: 1},
			{after: grace, scrapes: 2, want: []string{"ml/a/c/k=1"}},
		},
		// Seen by a sweep at the first change of pods a grace after the
		// last, deleted by one six graces later.
		"nobody scrapes: gone for about seven graces is enough": {
			{live: []Pod{a}, inc: []string{"ml/a"}},
			{live: []Pod{}},
			{after: grace, live: []Pod{}},
			{after: 5 * grace, live: []Pod{b}},
			{after: grace, live: []Pod{}},
			{scrapes: 1, want: none},
		},
		"before the owner knows its pods, none is gone": {
			{inc: []string{"ml/a"}, scrapes: 1, want: []string{"ml/a/c/k=1"}},
			{after: 100 * grace, scrapes: 2, want: []string{"ml/a/c/k=1"}},
		},
		// A pod's name is its user's choice: the same name in another
		// namespace is another pod, and its series stay.
		"same name, other namespace": {
			{live: []Pod{b, bElsewhere}, inc: []string{"ml/b", "other/b"}, scrapes: 1},
			{live: []Pod{bElsewhere}, scrapes: 1},
			{after: grace, scrapes: 1, want: []string{"other/b/c/k=1"}},
		},
	}
	for name, steps := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			for i, s := range steps {
				f.clock = f.clock.Add(s.after)
				if s.live != nil {
					f.p.SetLive(pods(s.live...))
				}
				for _, p := range s.inc {
					ns, pod, _ := strings.Cut(p, "/")
					f.vec.WithLabelValues(ns, pod, "c", "k").Inc()
				}
				var got []string
				for range s.scrapes {
					got = f.scrape()
				}
				if s.scrapes > 0 && s.want != nil && !slices.Equal(got, s.want) {
					t.Fatalf("step %d: series %q, want %q", i, got, s.want)
				}
			}
			if n := len(f.p.gone); n > 1 {
				t.Errorf("remembers %d gone pods: %v", n, slices.Collect(maps.Keys(f.p.gone)))
			}
		})
	}
}

// TestPrunerForgetsPodsWithoutSeries: most pods never have a series (no
// OOM kill); however many come and go, the Pruner remembers none of them.
func TestPrunerForgetsPodsWithoutSeries(t *testing.T) {
	f := newFixture(t)
	f.vec.WithLabelValues("ml", "a", "c", "k").Inc()
	for i := range 20000 {
		f.clock = f.clock.Add(time.Second)
		f.p.SetLive(pods(Pod{"ml", "a"}, Pod{"batch", strconv.Itoa(i)}))
		if i%1000 == 0 {
			f.scrape()
		}
	}
	f.p.SetLive(pods())
	f.scrape()
	if n := len(f.p.gone); n != 1 {
		t.Fatalf("remembers %d gone pods, want 1 (the one with a series)", n)
	}
}
