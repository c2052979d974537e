package metricsserver

import (
	"net/http"
	"strings"
	"testing"
)

func TestBearer(t *testing.T) {
	for _, tc := range []struct {
		name          string
		authorization string
		proxyHeader   string
		want          string
	}{
		{"bearer", "Bearer abc", "", "abc"},
		{"scheme is case-insensitive", "bEaReR abc", "", "abc"},
		{"spaces around the token", "Bearer   abc  ", "", "abc"},
		{"basic is not a token", "Basic YTpi", "", ""},
		{"no scheme", "abc", "", ""},
		{"empty token", "Bearer ", "", ""},
		{"through the pod proxy", "", "Bearer abc", "abc"},
		{"Authorization wins", "Bearer one", "Bearer two", "one"},
		{"nothing", "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodGet, "/metrics", nil)
			if tc.authorization != "" {
				r.Header.Set("Authorization", tc.authorization)
			}
			if tc.proxyHeader != "" {
				r.Header.Set(TokenHeader, tc.proxyHeader)
			}
			if got := bearer(r); got != tc.want {
				t.Errorf("bearer() = %q, want %q", got, tc.want)
			}
		})
	}
}

// A header from anyone who can connect: the token is either empty or what
// follows a Bearer scheme, trimmed, and never a request for a review
// without one.
func FuzzBearer(f *testing.F) {
	for _, s := range []string{"Bearer abc", "Basic YTpi", "bearer", "Bearer \x00", "  Bearer  x  "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r, _ := http.NewRequest(http.MethodGet, "/metrics", nil)
		r.Header["Authorization"] = []string{v}
		tok := bearer(r)
		if tok == "" {
			return
		}
		scheme, _, ok := strings.Cut(v, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || tok != strings.TrimSpace(tok) || !strings.Contains(v, tok) {
			t.Errorf("bearer(%q) = %q", v, tok)
		}
	})
}
