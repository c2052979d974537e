package nodetest

import (
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"podwarden/internal/vmtest"
)

//go:embed guest
var guestFiles embed.FS

// GuestConfig is one node's initramfs.
type GuestConfig struct {
	Bins      Bins
	Artifacts Artifacts
	NodeName  string
	// Kubeconfig is the kubelet's (a node token, the Service IP as server).
	Kubeconfig []byte
	// DiskModules load the data disk's driver and filesystem (virtio_blk,
	// ext4: modules on Debian's kernel), in order; none without a disk.
	DiskModules []string
}

// modules are loaded by /init in this order (dependencies first): the
// bridge CNI plugin needs bridge (llc, stp) and veth, containerd's
// snapshotter overlay, the network card e1000.
var modules = map[string]string{
	"llc":          "kernel/net/llc/llc.ko",
	"stp":          "kernel/net/802/stp.ko",
	"bridge":       "kernel/net/bridge/bridge.ko",
	"br_netfilter": "kernel/net/bridge/br_netfilter.ko",
	"veth":         "kernel/drivers/net/veth.ko",
	"overlay":      "kernel/fs/overlayfs/overlay.ko",
	"e1000":        "kernel/drivers/net/ethernet/intel/e1000/e1000.ko",
}

// WriteInitramfs writes the node's uncompressed initramfs (about 200 MB:
// gunzip under TCG would cost seconds per boot).
func WriteInitramfs(dst string, c GuestConfig) error {
	a := vmtest.NewArchive()
	a.Chardev("dev/console", 5, 1)
	a.Chardev("dev/null", 1, 3)
	for _, d := range []string{"proc", "sys", "run", "tmp", "var/log", "var/lib/kubelet", "etc/cni/net.d", "etc/containerd", "root"} {
		a.Dir(d)
	}
	adds := map[string]string{
		"bin/busybox":                           c.Bins.Busybox,
		"usr/local/bin/kubelet":                 c.Bins.Kubelet,
		"usr/local/bin/containerd":              filepath.Join(c.Bins.Containerd, "containerd"),
		"usr/local/bin/ctr":                     filepath.Join(c.Bins.Containerd, "ctr"),
		"usr/local/bin/containerd-shim-runc-v2": filepath.Join(c.Bins.Containerd, "containerd-shim-runc-v2"),
		"usr/local/bin/guestd":                  c.Artifacts.Guestd,
		"usr/sbin/runc":                         c.Bins.Runc,
		// containerd looks for it at /sbin (pkg/apparmor hostSupports);
		// without it there, it treats AppArmor as off and runs every pod
		// unconfined.
		"sbin/apparmor_parser": c.Bins.AppArmorParser,
	}
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		adds["usr/lib/cni/"+p] = filepath.Join(c.Bins.CNI, p)
	}
	for m, rel := range modules {
		adds["pw/modules/"+m+".ko"] = filepath.Join(c.Bins.Modules, rel)
	}
	for _, bin := range []string{c.Bins.Runc, c.Bins.AppArmorParser} {
		libs, err := sharedLibs(bin)
		if err != nil {
			return err
		}
		for _, l := range libs {
			adds[l[1:]] = l // the file the link points to, under the link's name
		}
	}
	var order []string
	for i, m := range c.DiskModules {
		dst := fmt.Sprintf("pw/disk-modules/%02d-%s", i, filepath.Base(m))
		adds[dst] = m
		order = append(order, "/"+dst)
	}
	if len(order) > 0 {
		a.Add("pw/disk-modules.order", 0o644, []byte(strings.Join(order, "\n")+"\n"))
	}
	for _, img := range c.Artifacts.Images {
		adds["pw/images/"+filepath.Base(img)] = img
	}
	for dst, src := range adds {
		if err := a.AddFile(dst, src); err != nil {
			return err
		}
	}
	embedded := map[string]string{
		"guest/init.sh":         "init",
		"guest/service.sh":      "pw/service.sh",
		"guest/containerd.toml": "etc/containerd/config.toml",
		"guest/hosts.toml":      "etc/containerd/certs.d/" + RegistryHost + "/hosts.toml",
		"guest/cni.conflist":    "etc/cni/net.d/10-podwarden-test.conflist",
		"guest/kubelet.yaml":    "var/lib/kubelet/config.yaml",
	}
	for src, dst := range embedded {
		b, err := guestFiles.ReadFile(src)
		if err != nil {
			return err
		}
		a.Add(dst, 0o755, b)
	}
	a.Add("var/lib/kubelet/kubeconfig", 0o600, c.Kubeconfig)
	a.Add("pw/node.env", 0o644, []byte(fmt.Sprintf("NODE_NAME=%s\n", c.NodeName)))
	a.Add("etc/resolv.conf", 0o644, []byte("nameserver 10.0.2.3\n"))
	a.Add("etc/machine-id", 0o644, []byte(fmt.Sprintf("%032x\n", hash(c.NodeName))))
	a.Add("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n"))
	a.Add("etc/group", 0o644, []byte("root:x:0:\n"))
	f, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("creating initramfs: %w", err)
	}
	if _, err := a.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func hash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h
}
