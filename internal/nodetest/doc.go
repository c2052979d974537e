// Package nodetest owns the real-node harness: it packs a Kubernetes node
// (kubelet, containerd, Debian's runc and CNI plugins, apparmor_parser, the
// kernel modules a pod network and the data disk need, and the pause and
// workload images, built here) into one initramfs, boots it in the qemu
// cgroup v2 guest of internal/vmtest, and joins it to the loopback control
// plane of internal/kubetest. The agent comes as users get it: this tree's
// release (internal/release) pushed to a docker-registry on this host,
// the chart installed from it over OCI, the image pulled by digest. The host reaches the
// guest through guestd (one qemu port forward: commands, and HTTP CONNECT
// for the API server's traffic to the kubelet and to pods); the guest
// reaches the API server through the kubernetes Service IP, which qemu
// forwards to loopback. Nothing runs in this host's cgroups or changes its
// sysctls, routes or addresses: everything node-side is inside the guest.
//
// The scenarios of issues 16, 19 and 22 are its tests (TestNode);
// docs/kubernetes.md reports the run. Only tests import it.
package nodetest
