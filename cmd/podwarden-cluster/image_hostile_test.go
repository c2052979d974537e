package main

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"podwarden/internal/image/regtest"
)

// writeRecorder remembers every request that would store something in
// the registry.
type writeRecorder struct {
	mu     sync.Mutex
	writes []string
}

func (w *writeRecorder) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.mu.Lock()
			w.writes = append(w.writes, r.Method+" "+r.URL.Path)
			w.mu.Unlock()
		}
		next.ServeHTTP(rw, r)
	})
}

func (w *writeRecorder) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.writes...)
}

// TestImageSymlinkedSourceNothingPushed: a lineage whose patch source is
// a symlink to a secret outside its directory is refused by validate and
// by patch, with the source named, and patch writes nothing to the
// registry.
func TestImageSymlinkedSourceNothingPushed(t *testing.T) {
	rec := &writeRecorder{}
	s := httptest.NewServer(rec.wrap(registry.New(registry.Logger(log.New(io.Discard, "", 0)))))
	t.Cleanup(s.Close)
	host := strings.TrimPrefix(s.URL, "http://")
	img, err := random.Image(64*1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	base, _ := name.ParseReference(host + "/pods/base:v1")
	if err := remote.Write(base, img); err != nil {
		t.Fatal(err)
	}
	before := rec.list()

	tmp := t.TempDir()
	secret := filepath.Join(tmp, "outside", "id_ed25519")
	if err := os.MkdirAll(filepath.Dir(secret), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secret, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tmp, "lineage")
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "files", "pod-start")); err != nil {
		t.Fatal(err)
	}
	lf := filepath.Join(dir, "lineage.yaml")
	in := fmt.Sprintf("schema: 1\nfamilies:\n  base:\n    repository: %s/pods/base\n    versions:\n      - name: v1\n        from: ubuntu:22.04\n"+
		"patches:\n  - id: oom-score-adj\n    files:\n      - path: /usr/local/bin/pod-start\n        source: files/pod-start\n", host)
	if err := os.WriteFile(lf, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}

	const want = `lineage.yaml:12: patches.oom-score-adj.files[0].source: "files/pod-start" is a symbolic link`
	for _, args := range [][]string{
		{"validate", "-f", lf},
		{"patch", host + "/pods/base:v1", "-f", lf},
		{"resolve", host + "/pods/base:v1", "-f", lf},
		{"backport", "oom-score-adj", "-f", lf},
	} {
		out, _, err := runImage(t, args...)
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: error %v, want it to start with %q (stdout %q)", args[0], err, want, out)
		}
	}
	if after := rec.list(); len(after) != len(before) {
		t.Errorf("the registry was written to: %q", after[len(before):])
	}
	tags, err := remote.List(base.Context())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(tags, ",") != "v1" {
		t.Errorf("tags = %q, want only v1", tags)
	}
}

// TestImagePatchHungRegistry: `image patch` with default flags against a
// registry that accepts TCP connections and never answers fails within a
// minute, naming the registry's host. It waits out the default stall
// timeout (30s).
func TestImagePatchHungRegistry(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: waits out the default stall timeout")
	}
	host := regtest.HungListener(t)
	lf := filepath.Join(t.TempDir(), "lineage.yaml")
	if err := os.WriteFile(lf, []byte(fmt.Sprintf(testLineage, host)), 0o644); err != nil {
		t.Fatal(err)
	}
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		out, _, err := runImage(t, "patch", host+"/pods/base:v1", "-f", lf)
		done <- result{out, err}
	}()
	select {
	case r := <-done:
		took := time.Since(start)
		t.Logf("failed after %s: %v", took.Round(time.Millisecond), r.err)
		if r.err == nil || !strings.Contains(r.err.Error(), host) {
			t.Fatalf("patch: stdout %q, error %v; want an error naming %s", r.out, r.err, host)
		}
		if took >= time.Minute {
			t.Errorf("took %s, want < 1m", took)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("image patch still hangs after 2m")
	}
}

// TestImageTimeoutFlags: a registry that drips a byte at a time never
// trips the stall timeout; --timeout ends it. --stall-timeout shortens
// the wait on a hung registry. Both errors name the registry's host.
func TestImageTimeoutFlags(t *testing.T) {
	drip := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		for r.Context().Err() == nil {
			if _, err := w.Write([]byte(" ")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(200 * time.Millisecond)
		}
	}))
	t.Cleanup(func() { drip.CloseClientConnections(); drip.Close() })
	dripHost := strings.TrimPrefix(drip.URL, "http://")
	hung := regtest.HungListener(t)
	for label, tc := range map[string]struct {
		host  string
		flags []string
	}{
		"drip, --timeout 3s":        {dripHost, []string{"--timeout", "3s"}},
		"hung, --stall-timeout 2s":  {hung, []string{"--stall-timeout", "2s"}},
		"drip, resolve's own 5s":    {dripHost, nil},
		"hung, resolve --timeout 0": {hung, []string{"--timeout", "0", "--stall-timeout", "2s"}},
	} {
		t.Run(label, func(t *testing.T) {
			lf := filepath.Join(t.TempDir(), "lineage.yaml")
			if err := os.WriteFile(lf, []byte(fmt.Sprintf(testLineage, tc.host)), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := "patch"
			if strings.Contains(label, "resolve") {
				cmd = "resolve"
			}
			start := time.Now()
			out, errOut, err := runImage(t, append([]string{cmd, tc.host + "/pods/base:v1", "-f", lf}, tc.flags...)...)
			took := time.Since(start)
			t.Logf("%s after %s: %v %s", cmd, took.Round(time.Millisecond), err, errOut)
			// resolve never fails: it prints REF and says why on stderr.
			msg := errOut
			if cmd == "patch" {
				if err == nil {
					t.Fatalf("patch succeeded: %q", out)
				}
				msg = err.Error()
			}
			if !strings.Contains(msg, tc.host) {
				t.Errorf("%q does not name %s", msg, tc.host)
			}
			if took > 45*time.Second {
				t.Errorf("took %s", took)
			}
		})
	}
}
