package kubeevent

import (
	"fmt"
	"math"
	"time"
)

// Limits of the correlator, those podwarden used with client-go's
// EventRecorder. Bursts are per involved object (a pod or the node) and
// reason, unlike client-go's: a storm of OOM kills in a pod must not
// silence the one Event saying podwarden ended a process there.
const (
	eventBurst      = 10
	eventRefill     = time.Minute // one more Event per object per minute after a burst
	aggregateAfter  = 5           // distinct messages on one object and reason before they are combined
	aggregateWindow = 10 * time.Minute
	maxKeys         = 4096 // per cache; a full cache is cleared, which only costs a new Event object
)

// combinedPrefix marks an Event that stands for several different ones,
// as client-go writes it (users and tools match on it).
const combinedPrefix = "(combined from similar events): "

// correlator decides what an Event becomes: dropped (the object's rate
// limit is spent), a new Event object, or a repeat that patches the count
// of one already posted. Like client-go's EventCorrelator: an OOM storm
// costs the API server a handful of writes, not one per kill, and a user
// still sees how many there were.
type correlator struct {
	buckets map[string]*bucket     // object+reason -> rate limit
	similar map[string]*similarSet // object+reason -> distinct messages in the window
	posted  map[string]*event      // dedupe key -> the Event posted for it
}

type bucket struct {
	tokens float64
	at     time.Time
}

type similarSet struct {
	start    time.Time
	messages map[string]struct{}
}

func newCorrelator() *correlator {
	return &correlator{buckets: map[string]*bucket{}, similar: map[string]*similarSet{}, posted: map[string]*event{}}
}

func objectKey(r objectRef) string {
	return fmt.Sprintf("%s\x00%s\x00%s\x00%s", r.Kind, r.Namespace, r.Name, r.UID)
}

// correlate returns the Event to write for e at now and whether it is a
// repeat (patch) of one already posted; ok is false when e is dropped.
// The returned Event is the correlator's own record: the caller must not
// keep it past the next call.
func (c *correlator) correlate(e *event, now time.Time) (out *event, repeat, ok bool) {
	simKey := objectKey(e.InvolvedObject) + "\x00" + e.Type + "\x00" + e.Reason
	if !c.allow(simKey, now) {
		return nil, false, false
	}

	// More than aggregateAfter different messages on one object and
	// reason within the window: combine the rest into one Event.
	set := c.similar[simKey]
	if set == nil || now.Sub(set.start) > aggregateWindow {
		if len(c.similar) >= maxKeys {
			clear(c.similar)
		}
		set = &similarSet{start: now, messages: map[string]struct{}{}}
		c.similar[simKey] = set
	}
	key := simKey + "\x00" + e.Message
	if _, seen := set.messages[e.Message]; !seen && len(set.messages) >= aggregateAfter {
		key = simKey // every combined Event shares one record
		e.Message = combinedPrefix + e.Message
	} else {
		set.messages[e.Message] = struct{}{}
	}

	if p := c.posted[key]; p != nil {
		p.Count++
		p.Message = e.Message
		p.LastTimestamp = e.LastTimestamp
		return p, true, true
	}
	if len(c.posted) >= maxKeys {
		clear(c.posted)
	}
	c.posted[key] = e
	return e, false, true
}

// forget drops the record of a posted Event the server no longer has, so
// the next repeat creates it again.
func (c *correlator) forget(e *event) {
	for k, p := range c.posted {
		if p == e {
			delete(c.posted, k)
		}
	}
}

// allow takes a token from key's bucket.
func (c *correlator) allow(key string, now time.Time) bool {
	b := c.buckets[key]
	if b == nil {
		if len(c.buckets) >= maxKeys {
			clear(c.buckets)
		}
		b = &bucket{tokens: eventBurst, at: now}
		c.buckets[key] = b
	}
	b.tokens = math.Min(eventBurst, b.tokens+float64(now.Sub(b.at))/float64(eventRefill))
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
