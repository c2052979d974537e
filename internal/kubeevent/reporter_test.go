package kubeevent

// These unit tests run the reporter against an httptest TLS server that
// plays the API server (a fake: it checks the requests and keeps the
// Events in a map). internal/kube's apiserver_test.go runs the same
// reporter against a real kube-apiserver with the chart's RBAC.

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"podwarden/internal/oomreport"
)

type fakeAPI struct {
	t     *testing.T
	token string

	mu       sync.Mutex
	events   map[string]*event // namespace/name
	requests []string          // "METHOD path"
	fail     int               // answer this many Event writes with 500
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		status(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/namespaces/ml/pods/nb-0":
		io.WriteString(w, `{"kind":"Pod","metadata":{"name":"nb-0","uid":"uid-1"},"spec":{"containers":[{"name":"notebook"}],"initContainers":[{"name":"setup"}]}}`)
	case r.Method == http.MethodGet:
		status(w, http.StatusNotFound, "NotFound")
	case f.fail > 0:
		f.fail--
		status(w, http.StatusInternalServerError, "InternalError")
	case r.Method == http.MethodPost:
		e := &event{}
		if err := json.NewDecoder(r.Body).Decode(e); err != nil {
			f.t.Errorf("POST body: %v", err)
		}
		ns := strings.Split(r.URL.Path, "/")[4]
		if e.Metadata.Namespace != ns {
			status(w, http.StatusBadRequest, "BadRequest")
			return
		}
		f.events[ns+"/"+e.Metadata.Name] = e
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "{}")
	case r.Method == http.MethodPatch:
		if ct := r.Header.Get("Content-Type"); ct != "application/strategic-merge-patch+json" {
			f.t.Errorf("PATCH content type %q", ct)
		}
		p := strings.Split(r.URL.Path, "/")
		e := f.events[p[4]+"/"+p[6]]
		if e == nil {
			status(w, http.StatusNotFound, "NotFound")
			return
		}
		if err := json.NewDecoder(r.Body).Decode(e); err != nil {
			f.t.Errorf("PATCH body: %v", err)
		}
		io.WriteString(w, "{}")
	default:
		status(w, http.StatusMethodNotAllowed, "MethodNotAllowed")
	}
}

func status(w http.ResponseWriter, code int, reason string) {
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "code": code, "reason": reason, "message": "fake says " + reason})
}

func (f *fakeAPI) snapshot() (map[string]event, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	evs := map[string]event{}
	for k, e := range f.events {
		evs[k] = *e
	}
	return evs, append([]string(nil), f.requests...)
}

// startFake serves f over TLS and writes a service account directory for it.
func startFake(t *testing.T, f *fakeAPI) Config {
	t.Helper()
	f.t, f.events = t, map[string]*event{}
	srv := httptest.NewTLSServer(f)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	must(t, os.WriteFile(filepath.Join(dir, "ca.crt"), ca, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "token"), []byte(f.token+"\n"), 0o600))
	host, port, _ := strings.Cut(strings.TrimPrefix(srv.URL, "https://"), ":")
	env := map[string]string{"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}
	cfg, err := InCluster(dir, func(k string) string { return env[k] })
	must(t, err)
	return cfg
}

// startReporter starts the Reporter of node-a on the fake API server f,
// closed when the test ends.
func startReporter(t *testing.T, f *fakeAPI, log *slog.Logger) *Reporter {
	t.Helper()
	r, err := NewReporter(t.Context(), startFake(t, f), "node-a", log)
	must(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// waitFor polls until cond holds on the fake's Events; the reporter
// writes in the background.
func waitFor(t *testing.T, f *fakeAPI, cond func(map[string]event) bool) map[string]event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs, reqs := f.snapshot()
		if cond(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out; events %+v\nrequests %v", evs, reqs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReporterPodOOM(t *testing.T) {
	f := &fakeAPI{token: "tok-1"}
	r := startReporter(t, f, nil)
	obs := observe(r)
	ctx := t.Context()

	// A replaced pod (same name, another UID) and a gone one get nothing,
	// counted as pod_gone; a report without a UID is refused at once.
	must(t, r.PodOOM(ctx, OOM{Namespace: "ml", PodName: "nb-0", PodUID: "uid-OLD", Comm: "python", PID: 1}))
	must(t, r.PodOOM(ctx, OOM{Namespace: "ml", PodName: "gone", PodUID: "uid-2", Comm: "python", PID: 1}))
	if err := r.PodOOM(ctx, OOM{Namespace: "ml", PodName: "nb-0", Comm: "python"}); err == nil {
		t.Error("no UID: want an error, never a guess by name")
	}
	obs.wait(t, "two pods not there", func(d map[DropReason]int) bool { return d[DropPodGone] == 2 })
	// Asked again within goneTTL, the gone pod costs no GET.
	must(t, r.PodOOM(ctx, OOM{Namespace: "ml", PodName: "gone", PodUID: "uid-2", Comm: "python", PID: 2}))
	obs.wait(t, "the gone pod again", func(d map[DropReason]int) bool { return d[DropPodGone] == 3 })
	o := OOM{Namespace: "ml", PodName: "nb-0", PodUID: "uid-1", Container: "setup", Comm: "python", PID: 42, Kind: oomreport.KindNode}
	for range 3 {
		must(t, r.PodOOM(ctx, o))
	}
	evs := waitFor(t, f, func(m map[string]event) bool {
		for _, e := range m {
			return e.Count == 3
		}
		return false
	})
	if len(evs) != 1 {
		t.Fatalf("%d Events, want 1 with count 3: %+v", len(evs), evs)
	}
	for _, e := range evs {
		want := objectRef{Kind: "Pod", Namespace: "ml", Name: "nb-0", UID: "uid-1", APIVersion: "v1", FieldPath: "spec.initContainers{setup}"}
		if e.InvolvedObject != want || e.Type != "Warning" || e.Reason != ReasonOOMKilledProcess || e.Message != PodMessage(o) ||
			e.Source != (source{Component, "node-a"}) || e.ReportingController != Component || e.ReportingInstance != "node-a" {
			t.Errorf("event %+v", e)
		}
		if _, err := time.Parse(time.RFC3339, e.FirstTimestamp); err != nil || !strings.HasSuffix(e.LastTimestamp, "Z") {
			t.Errorf("timestamps %q %q: want RFC 3339 UTC", e.FirstTimestamp, e.LastTimestamp)
		}
	}
	_, reqs := f.snapshot()
	gets := 0
	for _, q := range reqs {
		if strings.HasPrefix(q, "GET /api/v1/namespaces/ml/pods/nb-0") {
			gets++
		}
	}
	if gets != 2 { // the mismatch, then one verified read for the three reports
		t.Errorf("%d pod GETs, want 2 (the UID check is cached): %v", gets, reqs)
	}
	if n := count(reqs, "GET /api/v1/namespaces/ml/pods/gone"); n != 1 {
		t.Errorf("%d GETs of the gone pod, want 1 (cached as gone): %v", n, reqs)
	}
	if d := obs.drops(); d[DropInvalid] != 1 || len(d) != 2 {
		t.Errorf("drops %v, want 3 pod_gone and 1 invalid", d)
	}
}

func count(reqs []string, prefix string) int {
	n := 0
	for _, q := range reqs {
		if strings.HasPrefix(q, prefix) {
			n++
		}
	}
	return n
}

func TestReporterNodeOOMRetriesAndRecreates(t *testing.T) {
	f := &fakeAPI{token: "tok-1", fail: 2}
	r := startReporter(t, f, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.retryBase = time.Millisecond

	o := OOM{Kind: oomreport.KindNode, HostVictims: []string{"sshd (pid 812)"}}
	must(t, r.NodeOOM(t.Context(), o))
	evs := waitFor(t, f, func(m map[string]event) bool { return len(m) == 1 })
	for k, e := range evs {
		if !strings.HasPrefix(k, "default/node-a.") || e.InvolvedObject != (objectRef{Kind: "Node", Name: "node-a", UID: "node-a", APIVersion: "v1"}) {
			t.Errorf("%s: %+v", k, e.InvolvedObject)
		}
	}
	// The Event expires on the server; the next repeat creates it again.
	f.mu.Lock()
	clear(f.events)
	f.mu.Unlock()
	must(t, r.NodeOOM(t.Context(), o))
	evs = waitFor(t, f, func(m map[string]event) bool { return len(m) == 1 })
	for _, e := range evs {
		if e.Count != 2 {
			t.Errorf("re-created Event count %d, want 2 (it carries the repeats)", e.Count)
		}
	}
}

func TestTokenFileReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	must(t, os.WriteFile(path, []byte("old\n"), 0o600))
	now := time.Unix(1000, 0)
	tf := &tokenFile{path: path, now: func() time.Time { return now }}
	get := func() string {
		tok, err := tf.get()
		must(t, err)
		return tok
	}
	if got := get(); got != "old" {
		t.Fatalf("token %q", got)
	}
	must(t, os.WriteFile(path, []byte("new"), 0o600))
	if got := get(); got != "old" {
		t.Errorf("re-read before tokenReload: %q", got)
	}
	now = now.Add(tokenReload)
	if got := get(); got != "new" {
		t.Errorf("after tokenReload: %q, want the rotated token", got)
	}
	must(t, os.Remove(path))
	now = now.Add(tokenReload)
	if got := get(); got != "new" {
		t.Errorf("file gone mid-rotation: %q, want the last token kept", got)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
	if _, err := InCluster(dir, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "KUBERNETES_SERVICE_HOST") {
		t.Errorf("no env: %v", err)
	}
	if _, err := InCluster(dir, func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "token")) {
		t.Errorf("no token file: %v, want the path named", err)
	}
	must(t, os.WriteFile(filepath.Join(dir, "token"), []byte("t"), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "ca.crt"), []byte("not pem"), 0o600))
	cfg, err := InCluster(dir, func(k string) string { return env[k] })
	must(t, err)
	if cfg.Host != "https://10.96.0.1:443" {
		t.Errorf("host %q", cfg.Host)
	}
	if _, err := NewReporter(context.Background(), cfg, "n", nil); err == nil || !strings.Contains(err.Error(), "ca.crt") {
		t.Errorf("bad CA: %v, want the file named", err)
	}
	cfg.Host = "http://10.96.0.1"
	if _, err := NewReporter(context.Background(), cfg, "n", nil); err == nil || !strings.Contains(err.Error(), "https") {
		t.Errorf("plain http: %v", err)
	}
}

func TestReporterPodPressureKill(t *testing.T) {
	f := &fakeAPI{token: "tok-1"}
	r := startReporter(t, f, nil)
	ctx := t.Context()
	k := PressureKill{Namespace: "ml", PodName: "nb-0", PodUID: "uid-1", Container: "notebook", Comm: "python3", PID: 812,
		Signals: []string{"SIGTERM"}, Scope: ScopeNode, Available: 1, Total: 10}
	obs := observe(r)
	must(t, r.PodPressureKill(ctx, PressureKill{Namespace: "ml", PodName: "nb-0", PodUID: "uid-old"}))
	obs.wait(t, "stale UID dropped", func(d map[DropReason]int) bool { return d[DropPodGone] == 1 })
	if err := r.PodPressureKill(ctx, PressureKill{Namespace: "ml", PodName: "nb-0"}); err == nil {
		t.Error("no UID: want an error")
	}
	must(t, r.PodPressureKill(ctx, k))
	k.Outcome = OutcomeNothingKillable
	must(t, r.PodPressureKill(ctx, k))
	k.Outcome = OutcomeDryRun
	must(t, r.PodPressureKill(ctx, k))
	evs := waitFor(t, f, func(m map[string]event) bool { return len(m) == 3 })
	got := map[string]string{}
	for _, e := range evs {
		got[e.Reason] = e.Type
		if e.InvolvedObject.UID != "uid-1" || e.InvolvedObject.FieldPath != "spec.containers{notebook}" {
			t.Errorf("%s: involved object %+v", e.Reason, e.InvolvedObject)
		}
	}
	want := map[string]string{ReasonPressureKill: "Warning", ReasonPressureNothingKillable: "Warning", ReasonPressureKillDryRun: "Normal"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("reasons and types %v, want %v", got, want)
	}
}
