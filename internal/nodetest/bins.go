package nodetest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"podwarden/internal/kubetest"
)

// ContainerdVersion is what hack/containerd.sh builds.
const ContainerdVersion = "v2.4.2"

// Bins are the node's programs on this host.
type Bins struct {
	Kubelet        string
	Containerd     string // directory with containerd, ctr, containerd-shim-runc-v2
	Runc           string // Debian's runc (dynamic: its libraries go along)
	CNI            string // directory with bridge, host-local, loopback
	AppArmorParser string
	Busybox        string // static
	Modules        string // /lib/modules/<guest kernel>
}

// FindBins locates everything the guest carries. The error names what is
// missing and how to get it (make test-node does all of it).
func FindBins(kernel string) (Bins, error) {
	var b Bins
	var errs []error
	var err error
	if b.Kubelet, err = kubetest.Bin("kubelet"); err != nil {
		errs = append(errs, err)
	}
	dir := os.Getenv("PODWARDEN_CONTAINERD_DIR")
	if dir == "" {
		// As kubetest finds make deps' cache: the repository's .cache,
		// else /var/cache/podwarden.
		dir = filepath.Join(cacheRoot(), "containerd")
		if _, err := os.Stat(filepath.Join(dir, ContainerdVersion, "containerd")); err != nil {
			dir = "/var/cache/podwarden/containerd"
		}
	}
	b.Containerd = filepath.Join(dir, ContainerdVersion)
	for _, c := range []string{"containerd", "ctr", "containerd-shim-runc-v2"} {
		if _, err := os.Stat(filepath.Join(b.Containerd, c)); err != nil {
			errs = append(errs, fmt.Errorf("%s missing: run hack/containerd.sh: %w", c, err))
		}
	}
	look := func(dst *string, what, pkg string, paths ...string) {
		for _, p := range paths {
			if _, err := os.Stat(p); err == nil {
				*dst = p
				return
			}
		}
		errs = append(errs, fmt.Errorf("%s not found (apt-get install %s)", what, pkg))
	}
	look(&b.Runc, "runc", "runc", "/usr/sbin/runc", "/usr/bin/runc")
	look(&b.CNI, "CNI bridge plugin", "containernetworking-plugins", "/usr/lib/cni/bridge")
	b.CNI = filepath.Dir(b.CNI)
	look(&b.AppArmorParser, "apparmor_parser", "apparmor", "/usr/sbin/apparmor_parser", "/sbin/apparmor_parser")
	look(&b.Busybox, "static busybox", "busybox-static", "/bin/busybox", "/usr/bin/busybox")
	ver := strings.TrimPrefix(filepath.Base(kernel), "vmlinuz-")
	b.Modules = filepath.Join("/lib/modules", ver)
	if _, err := os.Stat(filepath.Join(b.Modules, "kernel/net/bridge/bridge.ko")); err != nil {
		errs = append(errs, fmt.Errorf("kernel modules for %s: %w", ver, err))
	}
	return b, errors.Join(errs...)
}

// cacheRoot is where make deps puts built tools (the parent of
// $PODWARDEN_KUBE_BIN_DIR), or the repository's .cache.
func cacheRoot() string {
	if d := os.Getenv("PODWARDEN_KUBE_BIN_DIR"); d != "" {
		return filepath.Dir(d)
	}
	if root, err := repoRoot(); err == nil {
		return filepath.Join(root, ".cache")
	}
	return ".cache"
}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the podwarden module")
	}
	return filepath.Dir(mod), nil
}

// sharedLibs lists the libraries a dynamic binary loads (ldd), so the
// guest can carry Debian's runc as Debian built it.
func sharedLibs(bin string) ([]string, error) {
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", bin, err)
	}
	var libs []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0])
		}
	}
	return libs, nil
}
