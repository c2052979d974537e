package webhook

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"podwarden/internal/image"
	"podwarden/internal/image/regtest"
)

var patch = image.Patch{ID: "oom-score-adj", Files: []image.File{{Path: "/usr/local/bin/pod-start", Mode: 0o755, Content: []byte("echo 900 > /proc/self/oom_score_adj\n")}}}

func startRegistry(t *testing.T, delay time.Duration) string {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	// The base is pushed at full speed: delaying its own two PUTs made
	// every run of this test take two minutes.
	var slow atomic.Bool
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() && r.Method == http.MethodPut {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	host := strings.TrimPrefix(s.URL, "http://")
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(host + "/pods/base:v1")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	slow.Store(delay > 0)
	return host
}

func admissionReview(t *testing.T, kind, op string, pod any) []byte {
	t.Helper()
	obj, _ := json.Marshal(pod)
	dry := strings.HasSuffix(op, "-dry")
	op = strings.TrimSuffix(op, "-dry")
	b, _ := json.Marshal(map[string]any{
		"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
		"request": map[string]any{"uid": "u-1", "kind": map[string]string{"version": "v1", "kind": kind}, "operation": op, "object": json.RawMessage(obj), "dryRun": dry},
	})
	return b
}

func podWith(images ...string) map[string]any {
	var cs []map[string]string
	for i, im := range images {
		cs = append(cs, map[string]string{"name": "c" + string(rune('0'+i)), "image": im})
	}
	return map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "p"}, "spec": map[string]any{"containers": cs}}
}

func post(t *testing.T, h http.Handler, body []byte) response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/mutate", bytes.NewReader(body)))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var out review
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
		t.Fatalf("bad response %s: %v", rec.Body, err)
	}
	return *out.Response
}

func TestWebhook(t *testing.T) {
	host := startRegistry(t, 0)
	// Far beyond the budget, so a webhook that waits for the registry
	// is caught by a bound generous enough for a busy machine.
	slow := startRegistry(t, time.Minute)
	hung := regtest.HungListener(t)
	p, err := image.NewPatcher(image.WithKeychain(authn.NewMultiKeychain()))
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		kind, op  string
		images    []string
		repos     []string
		wantOps   []string // substrings of the JSON patch, in order
		wantWarn  string
		wantPatch bool
	}{
		"patches a base": {"Pod", "CREATE", []string{host + "/pods/base:v1"}, nil,
			[]string{`"op":"replace","path":"/spec/containers/0/image","value":"` + host + `/pods/base:v1-pw-`, `"path":"/metadata/annotations"`}, "", true},
		"other repo untouched": {"Pod", "CREATE", []string{"docker.io/library/busybox:1", host + "/pods/base:v1"}, []string{host + "/pods/base"},
			[]string{`"path":"/spec/containers/1/image"`}, "", true},
		"registry down keeps the ref": {"Pod", "CREATE", []string{"127.0.0.1:1/pods/base:v1"}, nil,
			[]string{`c0: kept 127.0.0.1:1/pods/base:v1: `}, "keeps unpatched image", true},
		"slow registry within budget": {"Pod", "CREATE", []string{slow + "/pods/base:v1"}, nil,
			[]string{`kept ` + slow + `/pods/base:v1: patching took longer than`}, "keeps unpatched image", true},
		"hung registry keeps the ref": {"Pod", "CREATE", []string{hung + "/pods/base:v1"}, nil,
			[]string{`kept ` + hung + `/pods/base:v1: patching took longer than`}, "keeps unpatched image", true},
		"not a pod":  {"Deployment", "CREATE", []string{host + "/pods/base:v1"}, nil, nil, "", false},
		"not create": {"Pod", "UPDATE", []string{host + "/pods/base:v1"}, nil, nil, "", false},
		"dry run":    {"Pod", "CREATE-dry", []string{host + "/pods/base:v1"}, nil, nil, "dry run: images are not patched", false},
	} {
		t.Run(name, func(t *testing.T) {
			h, err := New(p, []image.Patch{patch}, WithBudget(500*time.Millisecond), WithRepositories(tc.repos...))
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			resp := post(t, h, admissionReview(t, tc.kind, tc.op, podWith(tc.images...)))
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("took %s, budget 500ms: the webhook waited for the registry", d)
			}
			if !resp.Allowed || resp.UID != "u-1" {
				t.Errorf("response %+v", resp)
			}
			if (resp.Patch != nil) != tc.wantPatch {
				t.Fatalf("patch = %s, want patch: %v", resp.Patch, tc.wantPatch)
			}
			s := string(resp.Patch)
			for _, w := range tc.wantOps {
				if !strings.Contains(s, w) {
					t.Errorf("patch %s lacks %s", s, w)
				}
			}
			if tc.wantWarn != "" && !strings.Contains(strings.Join(resp.Warnings, "\n"), tc.wantWarn) {
				t.Errorf("warnings %v", resp.Warnings)
			}
		})
	}
}

func TestNewOptions(t *testing.T) {
	p, _ := image.NewPatcher()
	for name, tc := range map[string]struct {
		r    Resolver
		opts []Option
	}{
		"nil resolver": {nil, nil},
		"zero budget":  {p, []Option{WithBudget(0)}},
		"bad repo":     {p, []Option{WithRepositories("UP/per")}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(tc.r, nil, tc.opts...); err == nil {
				t.Error("New succeeded")
			}
		})
	}
}
