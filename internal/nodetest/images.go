package nodetest

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
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"podwarden/internal/agentimage"
)

// The test fixtures' image names inside the guest: containerd imports
// their tarballs at boot and pods use imagePullPolicy Never. The agent's
// image is not among them: the chart's pinned digest is pulled from the
// release registry, as on a user's node (release_test.go).
const (
	PauseImage    = "podwarden.test/pause:1"
	WorkloadImage = "podwarden.test/workload:1"
)

// Artifacts are the files the host builds for a guest.
type Artifacts struct {
	Guestd string   // static guestd binary
	Images []string // image tarballs for ctr import
}

// BuildArtifacts builds guestd, the pause image and the workload image
// (Debian's static busybox, every applet linked, and slowhog) into dir.
func BuildArtifacts(ctx context.Context, repo, busybox, dir string) (Artifacts, error) {
	var a Artifacts
	a.Guestd = filepath.Join(dir, "guestd")
	if err := goBuild(ctx, repo, "./internal/nodetest/guestd", a.Guestd); err != nil {
		return a, err
	}
	pause := filepath.Join(dir, "pause")
	if err := goBuild(ctx, repo, "./internal/nodetest/pause", pause); err != nil {
		return a, err
	}
	pb, err := os.ReadFile(pause)
	if err != nil {
		return a, err
	}
	img, err := filesImage([]tarEntry{{name: "pause", mode: 0o755, data: pb}}, []string{"/pause"})
	if err != nil {
		return a, fmt.Errorf("pause image: %w", err)
	}
	if err := writeImage(filepath.Join(dir, "pause.tar"), PauseImage, img, &a); err != nil {
		return a, err
	}

	bb, err := os.ReadFile(busybox)
	if err != nil {
		return a, fmt.Errorf("reading busybox: %w", err)
	}
	out, err := exec.CommandContext(ctx, busybox, "--list").Output()
	if err != nil {
		return a, fmt.Errorf("busybox --list: %w", err)
	}
	entries := []tarEntry{{name: "bin/busybox", mode: 0o755, data: bb}, {name: "tmp/", mode: 0o1777, dir: true}}
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" {
			entries = append(entries, tarEntry{name: "bin/" + applet, link: "busybox"})
		}
	}
	// hog: a name the kernel log and the Events will show. Busybox runs
	// the applet named by argv[0] ("exec -a tail /bin/hog /dev/zero").
	entries = append(entries, tarEntry{name: "bin/hog", link: "busybox"})
	// jupyter-lab: a name the chart's keep patterns list, for a server
	// and for a hog that borrows it (scenario 4d).
	entries = append(entries, tarEntry{name: "bin/jupyter-lab", link: "busybox"})
	slow := filepath.Join(dir, "slowhog")
	if err := goBuild(ctx, repo, "./internal/nodetest/slowhog", slow); err != nil {
		return a, err
	}
	sb, err := os.ReadFile(slow)
	if err != nil {
		return a, err
	}
	entries = append(entries, tarEntry{name: "bin/slowhog", mode: 0o755, data: sb})
	img, err = filesImage(entries, []string{"/bin/sh"})
	if err != nil {
		return a, fmt.Errorf("workload image: %w", err)
	}
	if err := writeImage(filepath.Join(dir, "workload.tar"), WorkloadImage, img, &a); err != nil {
		return a, err
	}
	return a, nil
}

func writeImage(path, ref string, img v1.Image, a *Artifacts) error {
	if err := agentimage.WriteTarball(path, ref, img); err != nil {
		return err
	}
	a.Images = append(a.Images, path)
	return nil
}

func goBuild(ctx context.Context, repo, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w: %s", pkg, err, strings.TrimSpace(string(b)))
	}
	return nil
}

type tarEntry struct {
	name string
	mode int64
	data []byte
	link string // symlink target
	dir  bool
}

// filesImage is a one-layer linux/amd64 image of entries with fixed times.
func filesImage(entries []tarEntry, entrypoint []string) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: time.Unix(0, 0), Format: tar.FormatUSTAR}
		switch {
		case e.dir:
			h.Typeflag = tar.TypeDir
		case e.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.link, 0o777
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = entrypoint
	cf.Config.Env = []string{"PATH=/bin"}
	return mutate.ConfigFile(img, cf)
}
