package oomreport

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"podwarden/internal/kmsg"
)

// TestFollowQuietFlush feeds a real report's records, then goes quiet as a
// live /dev/kmsg does: the report must come out after idle, before any
// later record or the end of input.
func TestFollowQuietFlush(t *testing.T) {
	f, err := os.Open("testdata/guest-6.1-v2-container-limit.kmsg")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := kmsg.NewDecoder(f, time.UTC)
	var recs []kmsg.Record
	for {
		r, err := dec.Next()
		if err != nil {
			break
		}
		recs = append(recs, r)
	}
	quiet := make(chan struct{})
	next := func(ctx context.Context) (kmsg.Record, error) {
		if len(recs) > 0 {
			r := recs[0]
			recs = recs[1:]
			return r, nil
		}
		select {
		case <-quiet: // the test saw the report: end the input
			return kmsg.Record{}, io.EOF
		case <-ctx.Done():
			return kmsg.Record{}, ctx.Err()
		}
	}
	// Without the quiet flush the report would only come out when ctx
	// ends; emitted records whether ctx was still live.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var got []Report
	live := false
	err = Follow(ctx, next, 10*time.Millisecond, func(rs []Report) error {
		if len(rs) > 0 && len(got) == 0 {
			live = ctx.Err() == nil
			close(quiet)
		}
		got = append(got, rs...)
		return nil
	})
	if err != nil || len(got) != 1 || len(got[0].Victims) == 0 || !live {
		t.Fatalf("err %v, %d reports, emitted while live %v; want the one report, flushed by the quiet period", err, len(got), live)
	}

	boom := errors.New("boom")
	err = Follow(t.Context(), func(context.Context) (kmsg.Record, error) { return kmsg.Record{}, boom }, 0, func([]Report) error { return nil })
	if !errors.Is(err, boom) || err.Error() != "reading kernel log: boom" {
		t.Errorf("read error: %v", err)
	}
}
