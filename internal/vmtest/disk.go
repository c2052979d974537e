package vmtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Disk is what goes on the guest's virtio disk: an ext2 file system made
// with mke2fs -d from a staging directory (no mount, no root needed), which
// the guest mounts read-only at /disk. Binaries there behave as on a real
// node: their pages are page cache the kernel may evict and read back,
// which initramfs pages never are.
type Disk struct {
	// Files maps a path in the image to a file on the host.
	Files map[string]string
	// Links maps a path in the image to another path in it, as a hard
	// link: one binary under the names the scenarios give processes.
	Links map[string]string
	// Data maps a path in the image to a size: incompressible bytes for
	// readers to churn through.
	Data map[string]int64
}

// WriteImage stages d and writes the image to dst.
func (d Disk) WriteImage(ctx context.Context, dst string) error {
	mke2fs, err := findTool("mke2fs")
	if err != nil {
		return err
	}
	stage, err := os.MkdirTemp(filepath.Dir(dst), "disk-stage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	var size int64
	for _, name := range sortedNames(d.Files) {
		n, err := copyFile(d.Files[name], filepath.Join(stage, name))
		if err != nil {
			return fmt.Errorf("disk: %w", err)
		}
		size += n
	}
	for _, name := range sortedNames(d.Links) {
		p := filepath.Join(stage, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.Link(filepath.Join(stage, d.Links[name]), p); err != nil {
			return fmt.Errorf("disk: link %s: %w", name, err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2)) // fixed: the same bytes every run
	for _, name := range sortedNames(d.Data) {
		if err := writeRandom(filepath.Join(stage, name), d.Data[name], rng); err != nil {
			return fmt.Errorf("disk: %w", err)
		}
		size += d.Data[name]
	}
	// Room for the metadata and a margin; ext2: no journal to replay.
	mib := size>>20 + size>>23 + 16
	cmd := exec.CommandContext(ctx, mke2fs, "-q", "-F", "-t", "ext2", "-b", "4096", "-m", "0", "-L", "pwdisk",
		"-d", stage, dst, fmt.Sprintf("%dM", mib))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mke2fs -d: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func copyFile(src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return 0, err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm()|0o400)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return n, err
}

func writeRandom(p string, n int64, rng *rand.Rand) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	buf := make([]byte, 8)
	for i := int64(0); i < n; i += 8 {
		v := rng.Uint64()
		for j := range buf {
			buf[j] = byte(v >> (8 * j))
		}
		w.Write(buf)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// findTool finds a tool from e2fsprogs, which Debian puts in /sbin.
func findTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/sbin", "/usr/sbin"} {
		if p := filepath.Join(dir, name); isExec(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found (apt-get install e2fsprogs)", name)
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// ModuleDir is where the guest kernel's modules are: /lib/modules/<release>
// for /boot/vmlinuz-<release>, or PWVM_MODULES.
func (m Machine) ModuleDir() (string, error) {
	if d := os.Getenv("PWVM_MODULES"); d != "" {
		return d, nil
	}
	rel, ok := strings.CutPrefix(filepath.Base(m.Kernel), "vmlinuz-")
	if !ok {
		return "", fmt.Errorf("cannot tell the release of kernel %s: set PWVM_MODULES", m.Kernel)
	}
	d := filepath.Join("/lib/modules", rel)
	if _, err := os.Stat(filepath.Join(d, "modules.dep")); err != nil {
		return "", fmt.Errorf("modules of %s: %w", rel, err)
	}
	return d, nil
}

// Modules returns the .ko files that load the named modules (e.g.
// "virtio_blk", "ext4") on the guest kernel, dependencies first, each once,
// from modules.dep. Debian builds virtio and ext4 as modules.
func Modules(dir string, names ...string) ([]string, error) {
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	deps := map[string][]string{} // module path -> its dependencies
	byName := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		byName[strings.TrimSuffix(filepath.Base(mod), ".ko")] = mod
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var order []string
	seen := map[string]bool{}
	var visit func(string)
	visit = func(m string) {
		if seen[m] {
			return
		}
		seen[m] = true
		// modules.dep lists indirect dependencies too; visiting each
		// one's own list first puts every module after what it needs.
		for _, d := range deps[m] {
			visit(d)
		}
		order = append(order, m)
	}
	for _, n := range names {
		m, ok := byName[strings.ReplaceAll(n, "-", "_")]
		if !ok {
			return nil, fmt.Errorf("module %s: not in %s/modules.dep (built in, or another kernel?)", n, dir)
		}
		visit(m)
	}
	out := make([]string, len(order))
	for i, m := range order {
		out[i] = filepath.Join(dir, m)
		if _, err := os.Stat(out[i]); err != nil {
			return nil, errors.Join(fmt.Errorf("module %s", m), err)
		}
	}
	return out, nil
}
