package kubeevent

import (
	"context"
	"net/http"
)

// RESTClient lends the reporter's API client (its CA-pinned transport and
// rotated service account token) to other callers in the agent, so the
// agent has one way of talking to the API server. The metrics server's
// TokenReviews and SubjectAccessReviews (internal/metricsserver) use it.
type RESTClient struct{ c *client }

// NewRESTClient returns a client for cfg (InCluster in a pod).
func NewRESTClient(cfg Config) (*RESTClient, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	return &RESTClient{c: c}, nil
}

// Create POSTs body as JSON to path and decodes the reply into out. A
// refusal is a *StatusError.
func (r *RESTClient) Create(ctx context.Context, path string, body, out any) error {
	return r.c.do(ctx, http.MethodPost, path, "application/json", body, out)
}
