// Package kube is the status reader behind `podwarden status`: it lists
// the agents through the API server and reads their /metrics through the
// pod proxy. It uses client-go, so only podwarden-cluster links it; the
// agent's Events go through internal/kubeevent, which does not.
//
// The Helm library renders the chart in this package's tests and nowhere
// else; the chart and the Events reporter are tested here against a real
// kube-apiserver.
package kube
