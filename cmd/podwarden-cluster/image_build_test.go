package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestImageBuildEndToEnd builds base:v2 from base:v1 with a real buildkitd
// through the podwarden-build helper. It runs when the buildkitd that
// bench/image caches (or $PODWARDEN_BUILDKITD), runc and root are there.
func TestImageBuildEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	bkd := os.Getenv("PODWARDEN_BUILDKITD")
	if bkd == "" {
		bkd, _ = filepath.Abs("../../.cache/buildkit/buildkitd-v0.34.2")
	}
	if _, err := os.Stat(bkd); err != nil {
		t.Skip("skipping: no buildkitd (see docs/image.md)")
	}
	if _, err := exec.LookPath("runc"); err != nil || os.Geteuid() != 0 {
		t.Skip("skipping: buildkitd needs runc and root")
	}
	bb, err := os.ReadFile("/usr/bin/busybox")
	if err != nil {
		t.Skip("skipping: no static busybox for a base image")
	}
	dir, _ := os.MkdirTemp("", "pw-build-")
	t.Cleanup(func() { os.RemoveAll(dir) })
	helper := filepath.Join(dir, "podwarden-build")
	gb := exec.Command("go", "build", "-o", helper, "./cmd/podwarden-build")
	gb.Dir = "../../internal/image/buildkit"
	if out, err := gb.CombinedOutput(); err != nil {
		t.Fatalf("building the helper: %v\n%s", err, out)
	}

	host, lf := setup(t)
	// v1 needs a shell for RUN: a busybox image.
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb))})
	tw.Write(bb)
	tw.WriteHeader(&tar.Header{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "busybox"})
	tw.Close()
	data := b.Bytes()
	layer, _ := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	img, _ := mutate.AppendLayers(empty.Image, layer)
	cfg, _ := img.ConfigFile()
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Config.Env = "linux", "amd64", []string{"PATH=/bin"}
	img, _ = mutate.ConfigFile(img, cfg)
	v1, _ := name.ParseReference(host + "/pods/base:v1")
	remote.Delete(v1)
	if err := remote.Write(v1, img); err != nil {
		t.Fatal(err)
	}
	v2, _ := name.ParseReference(host + "/pods/base:v2")
	if err := remote.Delete(v2); err != nil { // setup pushed a random v2
		t.Fatal(err)
	}
	lin := bytes.Replace(mustRead(t, lf), []byte("apt-get install -y gzip"), []byte("echo v2 > /etc/version"), 1)
	lin = append(lin, "  - id: hello\n    run: [\"echo hi > /etc/hello\"]\n"...)
	os.WriteFile(lf, lin, 0o644)

	toml := fmt.Sprintf("[worker.oci]\n  snapshotter = \"native\"\n[registry.%q]\n  http = true\n  insecure = true\n", host)
	os.WriteFile(filepath.Join(dir, "bk.toml"), []byte(toml), 0o644)
	sock := "unix://" + filepath.Join(dir, "bk.sock")
	ctx, cancel := context.WithCancel(context.Background())
	d := exec.CommandContext(ctx, bkd, "--root", filepath.Join(dir, "root"), "--addr", sock, "--config", filepath.Join(dir, "bk.toml"))
	if err := d.Start(); err != nil {
		cancel()
		t.Skipf("skipping: buildkitd: %v", err)
	}
	t.Cleanup(func() { cancel(); d.Wait() })
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(filepath.Join(dir, "bk.sock")); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	args := []string{"build", "base", "v2", "-f", lf, "--builder", helper, "--buildkit-addr", sock, "--insecure", "--timeout", "2m"}
	out, errOut, err := runImage(t, args...)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, errOut)
	}
	if !strings.HasPrefix(out, host+"/pods/base:v2@sha256:") || !strings.Contains(errOut, "built and tagged") {
		t.Errorf("build printed %q, %q", out, errOut)
	}
	// Again: identical (BuildKit's cache) or refused; never overwritten.
	out2, errOut2, err := runImage(t, args...)
	switch {
	case err != nil && strings.Contains(err.Error(), "refusing to overwrite"):
	case err != nil:
		t.Fatalf("rebuild: %v\n%s", err, errOut2)
	case out2 != out || !strings.Contains(errOut2, "tag kept"):
		t.Errorf("rebuild printed %q, %q", out2, errOut2)
	}
	d2, err := remote.Head(v2)
	if err != nil || !strings.Contains(out, d2.Digest.String()) {
		t.Errorf("v2 is %v (%v), build said %s", d2, err, out)
	}
	t.Run("RUN patch", func(t *testing.T) { runPatchEndToEnd(t, host, lf, helper, sock) })
}

// TestImageBuildEndToEnd continues here: a RUN patch through BuildKit.
func runPatchEndToEnd(t *testing.T, host, lf, helper, sock string) {
	args := []string{"patch", host + "/pods/base:v1", "--patches", "hello,motd", "-f", lf, "--builder", helper, "--buildkit-addr", sock, "--insecure", "--timeout", "2m"}
	out, errOut, err := runImage(t, args...)
	if err != nil {
		t.Fatalf("patch: %v\n%s", err, errOut)
	}
	ref := strings.SplitN(strings.TrimSpace(out), "@", 2)[0]
	if !strings.Contains(ref, ":v1-pw-") || !strings.Contains(errOut, "applied hello,motd, pushed") {
		t.Errorf("patch printed %q %q", out, errOut)
	}
	img, err := remote.Image(mustRef(t, ref))
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigFile()
	if cfg.Config.Labels["dev.podwarden.patches"] != "hello,motd" {
		t.Errorf("labels %v", cfg.Config.Labels)
	}
	ls, _ := img.Layers()
	found := map[string]bool{}
	for _, l := range ls {
		rc, _ := l.Uncompressed()
		tr := tar.NewReader(rc)
		for h, err := tr.Next(); err == nil; h, err = tr.Next() {
			found[strings.TrimPrefix(h.Name, "./")] = true
		}
		rc.Close()
	}
	if !found["etc/hello"] || !found["etc/motd"] {
		t.Errorf("files in the patched image: %v", found)
	}
	// Again: the tag is found; nothing is built or pushed.
	out2, errOut2, err := runImage(t, args...)
	if err != nil || out2 != out || !strings.Contains(errOut2, "already existed") {
		t.Errorf("second patch: %q %q %v", out2, errOut2, err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
