// Package metricsserver serves the agent's /metrics, /healthz and /readyz
// so that no network client can use the endpoint against the node it runs
// on. The agent listens on the host network of every node, where any pod
// or machine that reaches the node's IP can connect:
//
//   - Connections are bounded (Options.MaxConns). Past the bound the
//     connection that has been idle longest is closed, else the one that
//     has sent nothing longest, else the new one is refused. A crowd of idle
//     keep-alive connections therefore costs a fixed amount of memory and
//     never keeps a fresh scrape waiting, which a listener that stops
//     accepting at its limit (netutil.LimitListener) would: the fresh
//     client would queue in the kernel behind every idle one. One source
//     host (an IPv4 address, an IPv6 /64) holds at most a share of the bound (Options.MaxConnsPerHost,
//     a quarter by default); past it, its own connections make room or
//     its new one is refused, so one host holding requests open until
//     their deadlines never locks out a scrape from another.
//   - Every phase of a connection has a deadline: the request header, the
//     whole request, the response, and the idle time between requests.
//   - Request headers are small (Options.MaxHeaderBytes), so a connection
//     holds a few KiB.
//   - With KubeAuth, each scrape carries a bearer token the API server
//     checks (TokenReview) and authorises (SubjectAccessReview on the
//     non-resource URL, as kubelet and kube-rbac-proxy do), with a bounded
//     cache and a bounded rate of reviews, so neither a token-spraying
//     client nor a steady scraper costs the API server more than a few
//     requests a second.
//
// It talks to the API server through kubeevent's REST client (net/http,
// no client-go; docs/architecture.md).
package metricsserver
