package kubeevent

import (
	"fmt"
	"testing"
	"time"
)

func testEvent(obj, msg string) *event {
	return &event{
		Metadata:       eventMeta{Name: obj + ".1", Namespace: "ml"},
		InvolvedObject: objectRef{Kind: "Pod", Namespace: "ml", Name: obj, UID: "uid-" + obj},
		Reason:         ReasonOOMKilledProcess, Message: msg, Type: "Warning", Count: 1,
	}
}

// outcome is what one correlate call did, for table comparison.
type outcome struct {
	dropped, repeat bool
	count           int32
	combined        bool
}

func run(c *correlator, at time.Time, e *event) outcome {
	out, repeat, ok := c.correlate(e, at)
	if !ok {
		return outcome{dropped: true}
	}
	return outcome{repeat: repeat, count: out.Count, combined: len(out.Message) > len(combinedPrefix) && out.Message[:len(combinedPrefix)] == combinedPrefix}
}

func TestCorrelator(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	t.Run("identical repeats count up to the burst, then drop", func(t *testing.T) {
		c := newCorrelator()
		var creates, repeats, drops int
		var last int32
		for range 50 {
			o := run(c, t0, testEvent("nb-0", "same"))
			switch {
			case o.dropped:
				drops++
			case o.repeat:
				repeats++
				last = o.count
			default:
				creates++
			}
		}
		if creates != 1 || repeats != eventBurst-1 || drops != 50-eventBurst || last != eventBurst {
			t.Errorf("creates %d repeats %d drops %d last count %d", creates, repeats, drops, last)
		}
	})
	t.Run("distinct messages are combined after aggregateAfter", func(t *testing.T) {
		c := newCorrelator()
		var got []outcome
		for i := range eventBurst {
			got = append(got, run(c, t0, testEvent("nb-1", fmt.Sprintf("pid %d", i))))
		}
		for i, o := range got {
			switch {
			case i < aggregateAfter:
				if o.repeat || o.combined || o.count != 1 {
					t.Errorf("%d: %+v, want a new plain Event", i, o)
				}
			case i == aggregateAfter:
				if o.repeat || !o.combined || o.count != 1 {
					t.Errorf("%d: %+v, want a new combined Event", i, o)
				}
			default:
				if !o.repeat || !o.combined || o.count != int32(i-aggregateAfter+1) {
					t.Errorf("%d: %+v, want a repeat of the combined Event", i, o)
				}
			}
		}
	})
	t.Run("rate limit is per object and reason and refills", func(t *testing.T) {
		c := newCorrelator()
		for i := range eventBurst {
			run(c, t0, testEvent("a", fmt.Sprint(i%3)))
		}
		if o := run(c, t0, testEvent("a", "x")); !o.dropped {
			t.Errorf("11th Event on a: %+v, want dropped", o)
		}
		if o := run(c, t0, testEvent("b", "x")); o.dropped {
			t.Error("another object shares a's limit")
		}
		kill := testEvent("a", "ended python3")
		kill.Reason = ReasonPressureKill
		if o := run(c, t0, kill); o.dropped {
			t.Error("a's OOM storm silenced its MemoryPressureKill Event")
		}
		if o := run(c, t0.Add(eventRefill), testEvent("a", "0")); o.dropped || !o.repeat {
			t.Errorf("a minute later: %+v, want a repeat", o)
		}
	})
	t.Run("the aggregation window ends", func(t *testing.T) {
		c := newCorrelator()
		for i := range aggregateAfter {
			run(c, t0, testEvent("nb-2", fmt.Sprint(i)))
		}
		if o := run(c, t0.Add(aggregateWindow+time.Second), testEvent("nb-2", "new")); o.combined {
			t.Errorf("after the window: %+v, want a plain Event", o)
		}
	})
	t.Run("forget makes the next repeat a create", func(t *testing.T) {
		c := newCorrelator()
		out, _, _ := c.correlate(testEvent("nb-3", "m"), t0)
		c.forget(out)
		if o := run(c, t0, testEvent("nb-3", "m")); o.repeat {
			t.Errorf("%+v, want a new Event", o)
		}
	})
}
