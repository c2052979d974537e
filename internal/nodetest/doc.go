// Package nodetest owns the real-node harness: it packs a Kubernetes node
// (kubelet, containerd, Debian's runc and CNI plugins, apparmor_parser, the
// kernel modules a pod network needs, and the pause, workload and
// podwarden images, all built here without a registry) into one initramfs,
// boots it in the qemu cgroup v2 guest of internal/vmtest, and joins it to
// the loopback control plane of internal/kubetest. The host reaches the
// guest through guestd (one qemu port forward: commands, and HTTP CONNECT
// for the API server's traffic to the kubelet and to pods); the guest
// reaches the API server through the kubernetes Service IP, which qemu
// forwards to loopback. Nothing runs in this host's cgroups or changes its
// sysctls, routes or addresses: everything node-side is inside the guest.
//
// The scenarios of issue 16 are its tests (TestNode); docs/kubernetes.md
// reports the run. Only tests import it.
package nodetest
