// Package kube is podwarden's side of the Kubernetes API: the Events
// reporter the agent uses to tell users which process of their pod the OOM
// killer took (and which host processes a node OOM took), and the status
// reader behind `podwarden status`, which lists the agents and reads their
// /metrics through the API server's pod proxy.
//
// It uses client-go only. The Helm library renders the chart in this
// package's tests and nowhere else.
package kube
