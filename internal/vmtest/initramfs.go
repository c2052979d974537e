package vmtest

import (
	"compress/gzip"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

// guestFiles are the guest's shell: /init, the helpers and one script per
// scenario. They are plain busybox sh so a failed run can be replayed by
// hand in any busybox shell.
//
//go:embed guest
var guestFiles embed.FS

// Mode says what runs beside the scenario's cgroups and processes.
type Mode string

const (
	// ModeK8s leaves everything as Kubernetes ships it.
	ModeK8s Mode = "k8s"
	// ModePodwarden runs "podwarden agent" in the guest.
	ModePodwarden Mode = "podwarden"
)

// Scenarios lists the guest scenarios in the order one boot runs them. The
// node OOM runs last in a boot: it is the one that could, if the kernel
// surprised us, take the harness down with it.
var Scenarios = []string{"container-limit", "late-arrivals", "drift", "nested", "agent-restart", "node-oom"}

// ImageConfig says what goes into one initramfs.
type ImageConfig struct {
	Busybox   string   // path of a static busybox
	Podwarden string   // path of a static podwarden binary; may be empty in ModeK8s
	Mode      Mode     // written to /pw/mode
	Plan      []string // scenario names, run in order
}

// WriteInitramfs writes an uncompressed newc initramfs to dst. Uncompressed
// because gunzip of ~40 MB under TCG costs seconds per boot and the kernel
// takes either.
func WriteInitramfs(dst string, cfg ImageConfig) error {
	im := newImage()
	bb, err := os.ReadFile(cfg.Busybox)
	if err != nil {
		return fmt.Errorf("reading busybox: %w", err)
	}
	im.add("bin/busybox", 0o755, bb)
	im.chardev("dev/console", 5, 1)
	im.chardev("dev/null", 1, 3)
	for _, d := range []string{"proc", "sys", "run", "tmp", "pw/bin"} {
		im.mkdirAll(d)
	}
	if cfg.Podwarden != "" {
		pw, err := os.ReadFile(cfg.Podwarden)
		if err != nil {
			return fmt.Errorf("reading podwarden: %w", err)
		}
		im.add("pw/podwarden", 0o755, pw)
	}
	for _, s := range cfg.Plan {
		if _, err := fs.Stat(guestFiles, "guest/scenarios/"+s+".sh"); err != nil {
			return fmt.Errorf("scenario %q: %w", s, err)
		}
	}
	err = fs.WalkDir(guestFiles, "guest", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := guestFiles.ReadFile(p)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, "guest/")
		switch rel {
		case "init.sh":
			im.add("init", 0o755, b)
		default:
			im.add(path.Join("pw", rel), 0o755, b)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("adding guest scripts: %w", err)
	}
	im.add("pw/mode", 0o644, []byte(string(cfg.Mode)+"\n"))
	im.add("pw/plan", 0o644, []byte(strings.Join(cfg.Plan, "\n")+"\n"))
	f, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("creating initramfs: %w", err)
	}
	// Compressed, so the guest holds the archive at a fraction of the
	// binary's size while unpacking: uncompressed, a 256 MiB guest runs out
	// of memory unpacking the podwarden binary ("Initramfs unpacking
	// failed: write error").
	zw, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err != nil {
		f.Close()
		return err
	}
	if _, err := im.writeTo(zw); err != nil {
		f.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return fmt.Errorf("compressing initramfs: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing initramfs: %w", err)
	}
	return nil
}
