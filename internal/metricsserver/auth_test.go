package metricsserver

// These tests run KubeAuth against a FAKE API server (httptest over TLS)
// that answers TokenReviews and SubjectAccessReviews from a table, through
// the agent's real REST client (kubeevent.RESTClient): the fake stands in
// for kube-apiserver, which cmd/podwarden-agent's apiserver_test.go uses
// for real when hack/kube-bins.sh has built it. The fake counts the
// reviews, which a real server does not tell.

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"podwarden/internal/kubeevent"
)

const agentToken = "agent-sa-token"

// fakeAPI knows two users: prometheus, allowed to get /metrics, and
// notebook, allowed nothing.
type fakeAPI struct {
	t             *testing.T
	tokenReviews  atomic.Int64
	accessReviews atomic.Int64
	fail          atomic.Bool
	mu            sync.Mutex
	lastSAR       sarSpec
}

var fakeUsers = map[string]userInfo{
	"prometheus-token": {Username: "system:serviceaccount:monitoring:prometheus", UID: "u1", Groups: []string{"system:serviceaccounts"}},
	"notebook-token":   {Username: "system:serviceaccount:ml:notebook", UID: "u2"},
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+agentToken {
		http.Error(w, `{"reason":"Unauthorized"}`, http.StatusUnauthorized)
		return
	}
	if f.fail.Load() {
		http.Error(w, `{"reason":"InternalError","message":"etcd is down"}`, http.StatusInternalServerError)
		return
	}
	switch r.URL.Path {
	case tokenReviewPath:
		f.tokenReviews.Add(1)
		var tr tokenReview
		if err := json.NewDecoder(r.Body).Decode(&tr); err != nil {
			f.t.Errorf("TokenReview body: %v", err)
		}
		if u, ok := fakeUsers[tr.Spec.Token]; ok {
			tr.Status = tokenReviewStatus{Authenticated: true, User: u}
		} else {
			tr.Status = tokenReviewStatus{Error: "invalid bearer token"}
		}
		json.NewEncoder(w).Encode(tr)
	case sarPath:
		f.accessReviews.Add(1)
		var sar subjectAccessReview
		if err := json.NewDecoder(r.Body).Decode(&sar); err != nil {
			f.t.Errorf("SubjectAccessReview body: %v", err)
		}
		f.mu.Lock()
		f.lastSAR = sar.Spec
		f.mu.Unlock()
		na := sar.Spec.NonResourceAttributes
		sar.Status.Allowed = sar.Spec.User == fakeUsers["prometheus-token"].Username && na != nil && na.Path == "/metrics" && na.Verb == "get"
		json.NewEncoder(w).Encode(sar)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeAPI) reviews() int64 { return f.tokenReviews.Load() + f.accessReviews.Load() }

// startAuth serves /metrics behind KubeAuth and an open /healthz, and
// returns the server's URL.
func startAuth(t *testing.T, o AuthOptions) (string, *fakeAPI, *KubeAuth) {
	t.Helper()
	f := &fakeAPI{t: t}
	api := httptest.NewTLSServer(f)
	t.Cleanup(api.Close)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tok, []byte(agentToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rc, err := kubeevent.NewRESTClient(kubeevent.Config{Host: api.URL, CAFile: ca, TokenFile: tok})
	if err != nil {
		t.Fatal(err)
	}
	auth := NewKubeAuth(rc, o, slog.New(slog.DiscardHandler))
	mux := http.NewServeMux()
	mux.Handle("/metrics", auth.Protect("/metrics", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "podwarden_up 1\n")
	})))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	srv, err := Serve(t.Context(), DefaultOptions("127.0.0.1:0"), mux, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return "http://" + srv.Addr().String(), f, auth
}

var testClient = &http.Client{Timeout: 30 * time.Second}

func get(t *testing.T, url string, header ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestKubeAuth(t *testing.T) {
	url, f, _ := startAuth(t, AuthOptions{})
	for _, tc := range []struct {
		name    string
		path    string
		header  []string
		code    int
		body    string
		reviews int64 // API calls this request may add (0: none at all)
	}{
		{"no token: 401, no API call", "/metrics", nil, 401, "bearer token is required", 0},
		{"basic auth: 401, no API call", "/metrics", []string{"Authorization", "Basic cHJvbTpwcm9t"}, 401, "bearer token is required", 0},
		{"empty bearer", "/metrics", []string{"Authorization", "Bearer "}, 401, "bearer token is required", 0},
		{"unknown token: 401", "/metrics", []string{"Authorization", "Bearer forged"}, 401, "does not accept this token", 1},
		{"authenticated, not allowed: 403", "/metrics", []string{"Authorization", "Bearer notebook-token"}, 403, "system:serviceaccount:ml:notebook may not get /metrics", 2},
		{"allowed: 200", "/metrics", []string{"Authorization", "Bearer prometheus-token"}, 200, "podwarden_up 1", 2},
		{"allowed again: cached", "/metrics", []string{"Authorization", "bearer prometheus-token"}, 200, "podwarden_up 1", 0},
		{"through the pod proxy's header", "/metrics", []string{TokenHeader, "Bearer prometheus-token"}, 200, "podwarden_up 1", 0},
		{"probes need no token", "/healthz", nil, 200, "ok", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.reviews()
			code, body, h := get(t, url+tc.path, tc.header...)
			if code != tc.code || !strings.Contains(body, tc.body) {
				t.Errorf("%d %q, want %d with %q", code, body, tc.code, tc.body)
			}
			if code == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("401 without a Bearer challenge: %q", h.Get("WWW-Authenticate"))
			}
			if n := f.reviews() - before; n != tc.reviews {
				t.Errorf("%d reviews sent, want %d", n, tc.reviews)
			}
		})
	}
	f.mu.Lock()
	sar := f.lastSAR
	f.mu.Unlock()
	if sar.UID != "u1" || len(sar.Groups) != 1 || sar.NonResourceAttributes == nil {
		t.Errorf("last SubjectAccessReview %+v does not carry the user's uid, groups and the non-resource URL", sar)
	}
}

// A client spraying forged tokens costs the API server at most the review
// rate, and the agent at most the cache bound; a scraper allowed before
// keeps its (stale) decision while the rate is spent.
func TestKubeAuthTokenSpray(t *testing.T) {
	url, f, auth := startAuth(t, AuthOptions{ReviewsPerSecond: 2, ReviewBurst: 4, CacheSize: 16, AllowTTL: time.Millisecond})
	if code, _, _ := get(t, url+"/metrics", "Authorization", "Bearer prometheus-token"); code != 200 {
		t.Fatalf("prometheus before the spray: %d", code)
	}
	start := time.Now()
	codes := map[int]int{}
	for i := range 300 {
		code, _, _ := get(t, url+"/metrics", "Authorization", fmt.Sprintf("Bearer forged-%d", i))
		codes[code]++
	}
	elapsed := time.Since(start)
	// The legitimate scraper's decision has outlived AllowTTL, and the
	// rate is spent: the stale decision stands.
	if code, _, _ := get(t, url+"/metrics", "Authorization", "Bearer prometheus-token"); code != 200 {
		t.Errorf("prometheus during the spray: %d, want 200 from its earlier decision", code)
	}
	allowed := 2 + 4 + 2*elapsed.Seconds() + 2 // first scrape's two, burst, rate, slack
	if n := float64(f.reviews()); n > allowed {
		t.Errorf("%v reviews in %s for 300 forged tokens, want at most %v", n, elapsed, allowed)
	}
	if codes[http.StatusTooManyRequests] == 0 || codes[http.StatusOK] != 0 {
		t.Errorf("answers to forged tokens %v, want 401s and 429s only", codes)
	}
	if n := auth.CacheLen(); n > 16 {
		t.Errorf("cache holds %d decisions, want at most 16", n)
	}
	t.Logf("300 forged tokens in %s: answers %v, %d reviews sent", elapsed.Round(time.Millisecond), codes, f.reviews())
}

// An API server that fails: a token never seen is a 503 (never a 200),
// one allowed within StaleTTL keeps working, and an expired decision is
// reviewed again once the server is back.
func TestKubeAuthAPIServerDown(t *testing.T) {
	url, f, auth := startAuth(t, AuthOptions{})
	now := time.Now()
	var mu sync.Mutex
	auth.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	prom := []string{"Authorization", "Bearer prometheus-token"}
	if code, _, _ := get(t, url+"/metrics", prom...); code != 200 {
		t.Fatal(code)
	}
	f.fail.Store(true)
	advance(2 * time.Minute) // past AllowTTL, within StaleTTL
	if code, _, _ := get(t, url+"/metrics", prom...); code != 200 {
		t.Errorf("allowed 2m ago, API server failing: %d, want 200", code)
	}
	if code, body, _ := get(t, url+"/metrics", "Authorization", "Bearer notebook-token"); code != 503 {
		t.Errorf("new token, API server failing: %d %q, want 503", code, body)
	}
	advance(5 * time.Minute) // past StaleTTL
	if code, _, _ := get(t, url+"/metrics", prom...); code != 503 {
		t.Errorf("allowed 7m ago, API server failing: %d, want 503", code)
	}
	f.fail.Store(false)
	before := f.reviews()
	if code, _, _ := get(t, url+"/metrics", prom...); code != 200 || f.reviews() != before+2 {
		t.Errorf("API server back: %d after %d reviews, want 200 after 2", code, f.reviews()-before)
	}
}

// With the rate opened wide, forged tokens still cannot grow the cache
// past its bound.
func TestKubeAuthCacheBound(t *testing.T) {
	url, f, auth := startAuth(t, AuthOptions{ReviewsPerSecond: 1e6, ReviewBurst: 1e6, CacheSize: 16})
	for i := range 200 {
		if code, _, _ := get(t, url+"/metrics", "Authorization", fmt.Sprintf("Bearer forged-%d", i)); code != 401 {
			t.Fatalf("forged token %d: %d, want 401", i, code)
		}
	}
	if n := auth.CacheLen(); n > 16 {
		t.Errorf("cache holds %d decisions after 200 forged tokens, want at most 16", n)
	}
	if f.tokenReviews.Load() != 200 {
		t.Errorf("%d TokenReviews, want one per token", f.tokenReviews.Load())
	}
}
