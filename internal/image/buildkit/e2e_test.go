package buildkit

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/moby/buildkit/client"
)

// buildkitd returns the buildkitd binary: $PODWARDEN_BUILDKITD, or the one
// bench/image caches, or the one on $PATH.
func buildkitd(t *testing.T) string {
	for _, p := range []string{os.Getenv("PODWARDEN_BUILDKITD"), "../../../.cache/buildkit/buildkitd-v0.34.2"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				abs, _ := filepath.Abs(p)
				return abs
			}
		}
	}
	if p, err := exec.LookPath("buildkitd"); err == nil {
		return p
	}
	t.Skip("skipping BuildKit end-to-end test: no buildkitd (set PODWARDEN_BUILDKITD; docs/image.md says how to build it)")
	return ""
}

// busyboxImage is a base image with a static busybox as /bin/sh.
func busyboxImage(t *testing.T) v1.Image {
	bb, err := os.ReadFile("/usr/bin/busybox")
	if err != nil {
		t.Skipf("skipping: no static busybox for the base image: %v", err)
	}
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, d := range []string{"bin/", "etc/", "tmp/", "proc/", "dev/", "sys/"} {
		tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(0, 0)})
	}
	tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb)), ModTime: time.Unix(0, 0)})
	tw.Write(bb)
	for _, l := range []string{"sh", "echo", "cat", "ln"} {
		tw.WriteHeader(&tar.Header{Name: "bin/" + l, Typeflag: tar.TypeSymlink, Linkname: "busybox", ModTime: time.Unix(0, 0)})
	}
	tw.Close()
	data := b.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigFile()
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Config.Env = []string{"PATH=/bin"}
	cfg.Config.Labels = map[string]string{LabelPatches: "oom-score-adj"}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func startBuildkitd(t *testing.T, bin, registryHost string) *client.Client {
	dir, err := os.MkdirTemp("", "pw-buildkitd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := fmt.Sprintf("[worker.oci]\n  enabled = true\n  snapshotter = \"native\"\n[worker.containerd]\n  enabled = false\n[registry.%q]\n  http = true\n  insecure = true\n", registryHost)
	cfgFile := filepath.Join(dir, "buildkitd.toml")
	os.WriteFile(cfgFile, []byte(cfg), 0o644)
	sock := "unix://" + filepath.Join(dir, "buildkitd.sock")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--root", filepath.Join(dir, "root"), "--addr", sock, "--config", cfgFile)
	logf, _ := os.Create(filepath.Join(dir, "buildkitd.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		cancel()
		t.Skipf("skipping: cannot start buildkitd: %v", err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait(); logf.Close() })
	for i := 0; i < 200; i++ {
		c, err := client.New(context.Background(), sock)
		if err == nil {
			if _, err = c.ListWorkers(context.Background()); err == nil {
				t.Cleanup(func() { c.Close() })
				return c
			}
			c.Close()
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(logf.Name())
	t.Fatalf("buildkitd did not come up:\n%s", b)
	return nil
}

func TestBuildEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	bin := buildkitd(t)
	if os.Geteuid() != 0 {
		t.Skip("skipping: buildkitd with runc needs root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("skipping: no runc (apt-get install runc)")
	}
	s := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer s.Close()
	host := strings.TrimPrefix(s.URL, "http://")
	base, _ := name.ParseReference(host + "/pods/base:v1")
	if err := remote.Write(base, busyboxImage(t)); err != nil {
		t.Fatal(err)
	}
	c := startBuildkitd(t, bin, host)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	t.Run("RUN patch", func(t *testing.T) {
		target, _ := name.NewTag(host + "/pods/base:v1-run")
		res, err := Build(ctx, c, Request{Base: base.String(), Patches: []RunPatch{{ID: "hello", Run: []string{"echo hi > /etc/hello"}}}, Target: target, Insecure: true})
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(target)
		if err != nil {
			t.Fatal(err)
		}
		if d, _ := img.Digest(); d != res.Digest || !res.Tagged {
			t.Errorf("tag %s, result %+v", d, res)
		}
		cfg, _ := img.ConfigFile()
		if cfg.Config.Labels[LabelPatches] != "hello,oom-score-adj" || strings.Join(cfg.Config.Env, ",") != "PATH=/bin" {
			t.Errorf("config %+v", cfg.Config)
		}
		if got := fileIn(t, img, "etc/hello"); got != "hi\n" {
			t.Errorf("/etc/hello = %q", got)
		}
		// Building again: the tag is kept; a different digest is refused.
		again, err := Build(ctx, c, Request{Base: base.String(), Patches: []RunPatch{{ID: "hello", Run: []string{"echo hi > /etc/hello"}}}, Target: target, Insecure: true})
		switch {
		case errors.Is(err, ErrTagExists):
			t.Logf("rebuild refused (not reproducible): %v", err)
		case err != nil:
			t.Fatal(err)
		case again.Tagged || again.Digest != res.Digest:
			t.Errorf("rebuild = %+v", again)
		default:
			t.Logf("rebuild gave the identical digest %s: tag kept", again.Digest)
		}
		if d, _ := remote.Head(target); d.Digest != res.Digest {
			t.Errorf("tag moved to %s", d.Digest)
		}
	})

	t.Run("refuses an existing tag", func(t *testing.T) {
		target, _ := name.NewTag(host + "/pods/base:taken")
		squatter := busyboxImage(t)
		squatter, _ = mutate.Config(squatter, v1.Config{Env: []string{"SQUATTER=1"}})
		if err := remote.Write(target, squatter); err != nil {
			t.Fatal(err)
		}
		want, _ := squatter.Digest()
		_, err := Build(ctx, c, Request{Base: base.String(), Patches: []RunPatch{{ID: "x", Run: []string{"true"}}}, Target: target, Insecure: true})
		if !errors.Is(err, ErrTagExists) {
			t.Fatalf("Build() error = %v, want ErrTagExists", err)
		}
		if d, _ := remote.Head(target); d.Digest != want {
			t.Errorf("tag overwritten")
		}
	})

	t.Run("increment", func(t *testing.T) {
		target, _ := name.NewTag(host + "/pods/base:v2")
		df := "FROM " + base.String() + "\nRUN echo v2 > /etc/version\nENV LANG=C.UTF-8\n"
		res, err := Build(ctx, c, Request{Dockerfile: []byte(df), Target: target, Insecure: true})
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(target)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := img.ConfigFile()
		if cfg.Config.Labels[LabelPatches] != "oom-score-adj" {
			t.Errorf("patch label not inherited through FROM: %v", cfg.Config.Labels)
		}
		if got := fileIn(t, img, "etc/version"); got != "v2\n" {
			t.Errorf("/etc/version = %q", got)
		}
		t.Logf("built %s@%s", target, res.Digest)
	})
}

// fileIn returns the content of p in img's last layer that has it.
func fileIn(t *testing.T, img v1.Image, p string) string {
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := ""
	for _, l := range ls {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			if strings.TrimPrefix(h.Name, "./") == p {
				b, _ := io.ReadAll(tr)
				out = string(b)
			}
		}
		rc.Close()
	}
	return out
}
