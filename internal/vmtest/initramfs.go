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
	Busybox   string // path of a static busybox
	Podwarden string // path of a static podwarden binary; may be empty in ModeK8s
	Mode      Mode   // written to /pw/mode
	// Plan lists what to run, in order: scenario names, or "scenario/mode"
	// cells that run a scenario in a mode of their own.
	Plan []string
	// Modules are kernel modules (.ko paths, dependencies first) that
	// /init loads before the scenarios, e.g. for the virtio disk.
	Modules []string
	// Files maps paths in the image (no leading slash) to host files.
	Files map[string]string
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
		scenario, _, _ := strings.Cut(s, "/")
		if _, err := fs.Stat(guestFiles, "guest/scenarios/"+scenario+".sh"); err != nil {
			return fmt.Errorf("scenario %q: %w", s, err)
		}
	}
	var order []string
	for i, m := range cfg.Modules {
		b, err := os.ReadFile(m)
		if err != nil {
			return fmt.Errorf("reading module: %w", err)
		}
		name := fmt.Sprintf("pw/modules/%02d-%s", i, path.Base(m))
		im.add(name, 0o644, b)
		order = append(order, "/"+name)
	}
	if len(order) > 0 {
		im.add("pw/modules.order", 0o644, []byte(strings.Join(order, "\n")+"\n"))
	}
	for _, name := range sortedNames(cfg.Files) {
		b, err := os.ReadFile(cfg.Files[name])
		if err != nil {
			return fmt.Errorf("reading %s: %w", cfg.Files[name], err)
		}
		im.add(name, 0o755, b)
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
