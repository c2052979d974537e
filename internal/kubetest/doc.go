// Package kubetest starts a real etcd and kube-apiserver on loopback for
// tests: no kubelet, scheduler or controllers, so pods stay Pending, but
// objects, RBAC, admission, TokenRequest, Events, the pod proxy and
// server-side dry runs are the real thing. The binaries are built from the
// Go module proxy by hack/kube-bins.sh and cached under .cache/kube.
//
// Only tests import this package; it is not part of the podwarden binary.
package kubetest
