package image

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

func TestStatus(t *testing.T) {
	host := newRegistry(t, nil)
	ref, _ := pushBase(t, host+"/pods/base:v1", nil)
	p := newPatcher(t)
	ctx := context.Background()
	all := []Patch{oomPatch, motdPatch, runPatch}
	states := func(st *BaseStatus) string {
		var out []string
		for _, pt := range all {
			out = append(out, pt.ID+"="+string(st.States[pt.ID]))
		}
		return strings.Join(out, " ")
	}
	if got := states(p.Status(ctx, ref, all)); got != "oom-score-adj=pending motd=pending curl=unsupported" {
		t.Errorf("before: %s", got)
	}
	res, err := p.Patch(ctx, ref, []Patch{oomPatch})
	if err != nil {
		t.Fatal(err)
	}
	st := p.Status(ctx, ref, all)
	if got := states(st); got != "oom-score-adj=applied motd=pending curl=unsupported" || st.Tag != res.Ref.String() {
		t.Errorf("after: %s, tag %s", got, st.Tag)
	}
	if got := states(p.Status(ctx, res.Ref, all)); got != "oom-score-adj=applied motd=pending curl=unsupported" {
		t.Errorf("patched image itself: %s", got)
	}
	missing, _ := name.ParseReference(host + "/pods/base:nope")
	if st := p.Status(ctx, missing, all); st.Err == nil || states(st) != "oom-score-adj=failed motd=failed curl=failed" {
		t.Errorf("missing base: %s %v", states(st), st.Err)
	}
}

func TestResolve(t *testing.T) {
	slow := &fault{match: isManifestPut, do: func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
		next.ServeHTTP(w, r)
	}}
	host := newRegistry(t, slow.wrap)
	ref, _ := pushBase(t, host+"/pods/base:v1", nil)
	p := newPatcher(t)
	ctx := context.Background()
	// In order: "too slow" must run before the tag exists.
	for _, tc := range []struct {
		name    string
		slow    int64
		patches []Patch
		timeout time.Duration
		patched bool
		reason  string
	}{
		{"too slow", 1000, []Patch{oomPatch}, 200 * time.Millisecond, false, "patching took longer than 200ms"},
		{"patched", 0, []Patch{oomPatch}, 5 * time.Second, true, ""},
		{"RUN patch skipped", 0, []Patch{oomPatch, runPatch}, 5 * time.Second, true, "skipped curl: RUN patches need BuildKit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			slow.faults.Store(tc.slow)
			defer slow.faults.Store(0)
			start := time.Now()
			r := p.Resolve(ctx, ref, tc.patches, tc.timeout)
			if d := time.Since(start); d > tc.timeout+time.Second {
				t.Errorf("took %s with a %s budget", d, tc.timeout)
			}
			if patched := r.Ref.String() != ref.String(); patched != tc.patched {
				t.Errorf("ref %s, patched %v", r.Ref, tc.patched)
			}
			switch {
			case tc.reason == "" && r.Reason != nil:
				t.Errorf("reason %v", r.Reason)
			case tc.reason != "" && (r.Reason == nil || !strings.Contains(r.Reason.Error(), tc.reason)):
				t.Errorf("reason %v, want %q", r.Reason, tc.reason)
			}
			if tc.reason != "" && tc.patched && !errors.Is(r.Reason, ErrRunPatch) {
				t.Errorf("reason %v does not wrap ErrRunPatch", r.Reason)
			}
		})
	}
}
