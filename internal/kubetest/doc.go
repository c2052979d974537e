// Package kubetest starts a real etcd and kube-apiserver on loopback for
// tests. By default there is no kubelet, scheduler or controller, so pods
// stay Pending, but objects, RBAC, admission, TokenRequest, Events, the pod
// proxy and server-side dry runs are the real thing. For a real node
// (internal/nodetest) it also runs kube-controller-manager and
// kube-scheduler and opens the server to kubelets (Node authorizer, a
// service range for the guest, egress to nodes over HTTP CONNECT). The
// binaries are built from the Go module proxy by hack/kube-bins.sh and
// cached under .cache/kube (CI: /var/cache/podwarden/kube).
//
// IsolatedNetwork reruns a test in a network namespace of its own where a
// pod range is local, so fake pods on thousands of pod IPs are reachable
// through the real pod proxy without touching the host's network.
//
// Only tests import this package; it is not part of the podwarden binary.
package kubetest
