// Package kubeevent is the agent's one outbox of Kubernetes Events: the
// agent's OOM kills (a Warning on the pod whose process the OOM killer
// took, after checking the pod's UID, so a replaced pod of the same name
// never gets it; one on the Node when a node OOM killed host processes)
// and internal/preempt's actions and refusals (on the pod, or on the Node
// when memory was short at node scope and nothing was ended). Callers
// never wait: reports are queued (reporter.go) and one goroutine checks
// pods, correlates and writes (outbox.go); every report that does not
// become an Event is told to the Observer with its DropReason.
//
// It talks to the API server's REST API with net/http and the service
// account's rotated token, not client-go: client-go's API scheme and its
// dependencies, linked into the agent, cost ~20 MiB of the agent's RSS on
// every node (docs/benchmarks.md), for three requests (GET pod, POST
// event, PATCH event). What client-go's EventRecorder did that matters
// here (per-object rate limits, counting repeats, combining similar
// Events) is in correlate.go, with the same limits.
package kubeevent
