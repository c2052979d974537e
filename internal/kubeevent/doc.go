// Package kubeevent posts the agent's OOM kills as Kubernetes Events: a
// Warning on the pod whose process the OOM killer took (after checking the
// pod's UID, so a replaced pod of the same name never gets it) and one on
// the Node when a node OOM killed host processes.
//
// It talks to the API server's REST API with net/http and the service
// account's rotated token, not client-go: client-go's API scheme and its
// dependencies, linked into the agent, cost ~20 MiB of the agent's RSS on
// every node (docs/benchmarks.md), for three requests (GET pod, POST
// event, PATCH event). What client-go's EventRecorder did that matters
// here (per-object rate limits, counting repeats, combining similar
// Events) is in correlate.go, with the same limits.
package kubeevent
