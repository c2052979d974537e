package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

var update = flag.Bool("update", false, "update golden files")

var (
	oomPatch = Patch{ID: "oom-score-adj", Files: []File{{
		Path: "/usr/local/bin/pod-start", Mode: 0o755,
		Content: []byte("#!/bin/sh\necho 900 > /proc/self/oom_score_adj\nexec /sbin/init \"$@\"\n"),
	}}}
	motdPatch = Patch{ID: "motd", Files: []File{{Path: "/etc/motd", Mode: 0o644, Content: []byte("hello\n")}}}
	runPatch  = Patch{ID: "curl", Run: []string{"apt-get install -y curl"}}
)

// fastRetry keeps fault tests quick: ggcr retries 5xx three times.
var fastRetry = remote.WithRetryBackoff(remote.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 2})

// newRegistry starts an in-process registry behind wrap (nil: none).
func newRegistry(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log0()))
	if wrap != nil {
		h = wrap(h)
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

// pushBase pushes img (random if nil) to host/repo:tag.
func pushBase(t *testing.T, ref string, img v1.Image) (name.Reference, v1.Image) {
	t.Helper()
	if img == nil {
		var err error
		if img, err = random.Image(256*1024, 3); err != nil {
			t.Fatal(err)
		}
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return r, img
}

func newPatcher(t *testing.T, opts ...Option) *Patcher {
	t.Helper()
	p, err := NewPatcher(append([]Option{WithKeychain(authn.NewMultiKeychain()), WithRemoteOptions(fastRetry)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// patchAtOnce has n patchers, each from patcher, apply patches to ref at
// the same time. Every one must succeed with the same tag and digest,
// which it returns.
func patchAtOnce(t *testing.T, ctx context.Context, n int, patcher func() *Patcher, ref name.Reference, patches []Patch) *Result {
	t.Helper()
	results := make([]*Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = patcher().Patch(ctx, ref, patches)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("patch %d: %v", i, errs[i])
		}
		if results[i].Ref.String() != results[0].Ref.String() || results[i].Digest != results[0].Digest {
			t.Errorf("patch %d: %s@%s, patch 0: %s@%s", i, results[i].Ref, results[i].Digest, results[0].Ref, results[0].Digest)
		}
	}
	return results[0]
}

func TestPatch(t *testing.T) {
	host := newRegistry(t, nil)
	ref, base := pushBase(t, host+"/pods/base:v1", nil)
	var c Counter
	p := newPatcher(t, WithTransport(c.Transport(nil)))
	ctx := context.Background()

	res, err := p.Patch(ctx, ref, []Patch{oomPatch, motdPatch})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Pushed || strings.Join(res.Applied, ",") != "oom-score-adj,motd" {
		t.Errorf("result = %+v", res)
	}
	if !strings.HasPrefix(res.Ref.(name.Tag).TagStr(), "v1-pw-") {
		t.Errorf("target tag %s, want v1-pw-*", res.Ref)
	}
	// Base layers were not moved: only the patch layer, config and manifests.
	baseSize := imageSize(t, base)
	if moved := c.Total(); moved > baseSize/100 {
		t.Errorf("moved %d bytes, more than 1%% of the base's %d", moved, baseSize)
	}
	t.Logf("patched %s -> %s: %d bytes moved in %d requests (base %d bytes)", ref, res.Ref, c.Total(), c.Requests(), baseSize)

	got, err := remote.Image(res.Ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(got); err != nil {
		t.Fatalf("patched image does not validate: %v", err)
	}
	cfg, _ := got.ConfigFile()
	if l := cfg.Config.Labels[LabelPatches]; l != "motd,oom-score-adj" {
		t.Errorf("label = %q", l)
	}
	m, _ := got.Manifest()
	bd, _ := base.Digest()
	if m.Annotations[AnnotationBaseDigest] != bd.String() || m.Annotations[AnnotationBaseName] != ref.Name() {
		t.Errorf("annotations = %v", m.Annotations)
	}
	ls, _ := got.Layers()
	if len(ls) != 4 {
		t.Fatalf("%d layers, want 4", len(ls))
	}
	files := tarFiles(t, ls[3])
	if files["usr/local/bin/pod-start"] != string(oomPatch.Files[0].Content) || files["etc/motd"] != "hello\n" {
		t.Errorf("patch layer files = %v", files)
	}

	// Patching again: same target, nothing pushed.
	again, err := p.Patch(ctx, ref, []Patch{oomPatch, motdPatch})
	if err != nil {
		t.Fatal(err)
	}
	if again.Ref.String() != res.Ref.String() || again.Digest != res.Digest || again.Pushed {
		t.Errorf("second patch = %+v, want %s unpushed", again, res.Ref)
	}
	// Patching the patched image is a no-op returning the same ref.
	noop, err := p.Patch(ctx, res.Ref, []Patch{motdPatch, oomPatch})
	if err != nil {
		t.Fatal(err)
	}
	if !noop.NoOp() || noop.Ref.String() != res.Ref.String() || noop.Digest != res.Digest {
		t.Errorf("patching the patched image = %+v", noop)
	}
}

func TestPatchInherited(t *testing.T) {
	// An image built FROM a patched base inherits the label: nothing to do.
	host := newRegistry(t, nil)
	ref, _ := pushBase(t, host+"/pods/base:v1", nil)
	p := newPatcher(t)
	ctx := context.Background()
	res, err := p.Patch(ctx, ref, []Patch{oomPatch})
	if err != nil {
		t.Fatal(err)
	}
	img, _ := remote.Image(res.Ref)
	child, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	cl, _ := child.Layers()
	v2 := appendLayer(t, img, cl[0])
	v2ref, _ := pushBase(t, host+"/pods/base:v2", v2)
	r2, err := p.Patch(ctx, v2ref, []Patch{oomPatch, motdPatch})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(r2.Had, ",") != "oom-score-adj" || strings.Join(r2.Applied, ",") != "motd" {
		t.Errorf("had %v applied %v", r2.Had, r2.Applied)
	}
}

func TestPatchReproducible(t *testing.T) {
	// Two patchers, pushing the same base to two repositories: the same
	// tag and the same digest, byte for byte.
	host := newRegistry(t, nil)
	ref, _ := pushBase(t, host+"/pods/base:v1", nil)
	var results []*Result
	for _, repo := range []string{"a", "b"} {
		res, err := newPatcher(t, WithRepository(host+"/"+repo)).Patch(context.Background(), ref, []Patch{oomPatch})
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, res)
	}
	if results[0].Digest != results[1].Digest {
		t.Errorf("digests differ: %s %s", results[0].Digest, results[1].Digest)
	}
	if a, b := results[0].Ref.(name.Tag).TagStr(), results[1].Ref.(name.Tag).TagStr(); a != b {
		t.Errorf("tags differ: %s %s", a, b)
	}
}

func TestPatchConcurrent(t *testing.T) {
	host := newRegistry(t, nil)
	ref, _ := pushBase(t, host+"/pods/base:v1", nil)
	// Separate Patchers, as in separate processes: no shared singleflight.
	patchAtOnce(t, context.Background(), 8, func() *Patcher { return newPatcher(t) }, ref, []Patch{oomPatch})
	tags, err := remote.List(ref.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) != 2 {
		t.Errorf("tags = %v, want v1 and one patched tag", tags)
	}
}

func TestPatchErrors(t *testing.T) {
	host := newRegistry(t, nil)
	ref, _ := pushBase(t, host+"/pods/base:v1", nil)
	p := newPatcher(t)
	ctx := context.Background()
	for name, tc := range map[string]struct {
		patches []Patch
		want    error
	}{
		"run patch": {[]Patch{oomPatch, runPatch}, ErrRunPatch},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := p.Patch(ctx, ref, tc.patches); !errors.Is(err, tc.want) {
				t.Errorf("Patch() error = %v, want %v", err, tc.want)
			}
		})
	}
	for name, opt := range map[string]Option{
		"nil transport": WithTransport(nil),
		"nil keychain":  WithKeychain(nil),
		"bad repo":      WithRepository("UPPER/Case"),
		"nil remote":    WithRemoteOptions(nil),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewPatcher(opt); err == nil {
				t.Error("NewPatcher succeeded")
			}
		})
	}
}

func TestPatchOtherRepository(t *testing.T) {
	host := newRegistry(t, nil)
	ref, base := pushBase(t, host+"/pods/base:v1", nil)
	var c Counter
	p := newPatcher(t, WithTransport(c.Transport(nil)), WithRepository(host+"/pods/patched"))
	res, err := p.Patch(context.Background(), ref, []Patch{oomPatch})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ref.Context().RepositoryStr() != "pods/patched" {
		t.Errorf("ref = %s", res.Ref)
	}
	if moved, size := c.Total(), imageSize(t, base); moved > size/100 {
		t.Errorf("moved %d bytes of a %d byte base", moved, size)
	}
}

func TestLayerGolden(t *testing.T) {
	var b bytes.Buffer
	if err := LayerTar(&b, []Patch{oomPatch, motdPatch}); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	tr := tar.NewReader(&b)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "%c %s %o %d:%d %d %s\n", h.Typeflag, h.Name, h.Mode, h.Uid, h.Gid, h.Size, h.ModTime.UTC().Format(time.RFC3339))
	}
	for _, mt := range []types.MediaType{types.DockerLayer, types.OCILayer} {
		l, err := NewLayer([]Patch{oomPatch, motdPatch}, mt)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := l.Digest()
		diff, _ := l.DiffID()
		fmt.Fprintf(&out, "%s digest %s diffid %s\n", mt, d, diff)
	}
	const golden = "testdata/layer.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Errorf("layer differs from %s (not reproducible?):\n%s", golden, out.String())
	}
}

func TestTargetTag(t *testing.T) {
	repo, _ := name.NewRepository("r.example.com/pods/base")
	d := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	tag := func(s string) name.Reference {
		r, err := name.ParseReference(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for name, tc := range map[string]struct {
		src     name.Reference
		patches []Patch
		prefix  string
	}{
		"tag":        {tag("r.example.com/pods/base:v1"), []Patch{oomPatch}, "v1-pw-"},
		"patched":    {tag("r.example.com/pods/base:v1-pw-0123456789ab"), []Patch{oomPatch}, "v1-pw-"},
		"digest":     {tag("r.example.com/pods/base@sha256:" + d.Hex), []Patch{oomPatch}, "sha256-abababababab-pw-"},
		"long":       {tag("r.example.com/pods/base:" + strings.Repeat("x", 128)), []Patch{oomPatch}, strings.Repeat("x", 112) + "-pw-"},
		"order free": {tag("r.example.com/pods/base:v1"), []Patch{motdPatch, oomPatch}, "v1-pw-"},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := TargetTag(repo, tc.src, d, tc.patches)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(got.TagStr(), tc.prefix) || len(got.TagStr()) != len(tc.prefix)+12 {
				t.Errorf("TargetTag() = %s, want %s<12 hex>", got.TagStr(), tc.prefix)
			}
		})
	}
	a, _ := TargetTag(repo, tag("r.example.com/pods/base:v1"), d, []Patch{motdPatch, oomPatch})
	b, _ := TargetTag(repo, tag("r.example.com/pods/base:v1"), d, []Patch{oomPatch, motdPatch})
	c, _ := TargetTag(repo, tag("r.example.com/pods/base:v1"), d, []Patch{oomPatch})
	if a != b || a == c {
		t.Errorf("tags: %s %s %s", a, b, c)
	}
}

func imageSize(t *testing.T, img v1.Image) int64 {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, l := range ls {
		s, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		n += s
	}
	return n
}

func tarFiles(t *testing.T, l v1.Layer) map[string]string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = string(b)
	}
}
