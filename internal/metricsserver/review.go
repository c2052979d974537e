package metricsserver

import (
	"context"
	"fmt"
	"net/http"
)

// The parts of authentication.k8s.io/v1 TokenReview and
// authorization.k8s.io/v1 SubjectAccessReview the agent sends and reads.
type tokenReview struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Spec       tokenReviewSpec   `json:"spec"`
	Status     tokenReviewStatus `json:"status,omitempty"`
}

type tokenReviewSpec struct {
	Token string `json:"token"`
}

type tokenReviewStatus struct {
	Authenticated bool     `json:"authenticated,omitempty"`
	User          userInfo `json:"user,omitempty"`
	Error         string   `json:"error,omitempty"`
}

type userInfo struct {
	Username string              `json:"username,omitempty"`
	UID      string              `json:"uid,omitempty"`
	Groups   []string            `json:"groups,omitempty"`
	Extra    map[string][]string `json:"extra,omitempty"`
}

type subjectAccessReview struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Spec       sarSpec   `json:"spec"`
	Status     sarStatus `json:"status,omitempty"`
}

type sarSpec struct {
	User                  string              `json:"user,omitempty"`
	UID                   string              `json:"uid,omitempty"`
	Groups                []string            `json:"groups,omitempty"`
	Extra                 map[string][]string `json:"extra,omitempty"`
	NonResourceAttributes *nonResource        `json:"nonResourceAttributes,omitempty"`
}

type nonResource struct {
	Path string `json:"path"`
	Verb string `json:"verb"`
}

type sarStatus struct {
	Allowed         bool   `json:"allowed"`
	Denied          bool   `json:"denied,omitempty"`
	Reason          string `json:"reason,omitempty"`
	EvaluationError string `json:"evaluationError,omitempty"`
}

const (
	tokenReviewPath = "/apis/authentication.k8s.io/v1/tokenreviews"
	sarPath         = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
)

// review asks the API server who tok is and whether they may get path.
func (k *KubeAuth) review(ctx context.Context, tok, path string) (decision, error) {
	tr := tokenReview{APIVersion: "authentication.k8s.io/v1", Kind: "TokenReview", Spec: tokenReviewSpec{Token: tok}}
	var trOut tokenReview
	if err := k.api.Create(ctx, tokenReviewPath, tr, &trOut); err != nil {
		return decision{}, fmt.Errorf("TokenReview: %w", err)
	}
	if !trOut.Status.Authenticated {
		return decision{code: http.StatusUnauthorized, reason: trOut.Status.Error}, nil
	}
	u := trOut.Status.User
	sar := subjectAccessReview{APIVersion: "authorization.k8s.io/v1", Kind: "SubjectAccessReview", Spec: sarSpec{
		User: u.Username, UID: u.UID, Groups: u.Groups, Extra: u.Extra,
		NonResourceAttributes: &nonResource{Path: path, Verb: "get"},
	}}
	var sarOut subjectAccessReview
	if err := k.api.Create(ctx, sarPath, sar, &sarOut); err != nil {
		return decision{}, fmt.Errorf("SubjectAccessReview for %s: %w", u.Username, err)
	}
	if !sarOut.Status.Allowed {
		return decision{code: http.StatusForbidden, user: u.Username, reason: sarOut.Status.Reason}, nil
	}
	return decision{code: http.StatusOK, user: u.Username}, nil
}
