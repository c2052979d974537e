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
// Only tests import this package; it is not part of the podwarden binary.
package kubetest
