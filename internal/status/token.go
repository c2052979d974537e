package status

import (
	"context"
	"fmt"
	"sync"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
)

// What the chart puts on an agent pod when its /metrics checks scrapes
// (metrics.auth kubernetes): the ServiceAccount whose tokens it accepts.
const (
	annotationMetricsAuth   = "podwarden.dev/metrics-auth"
	annotationMetricsReader = "podwarden.dev/metrics-reader"
	// tokenHeader is the header the agent reads a token from besides
	// Authorization (metricsserver.TokenHeader): the API server's pod
	// proxy drops the caller's Authorization header after authenticating
	// it, and forwards the others.
	tokenHeader = "X-Podwarden-Authorization"
	// tokenSeconds is how long a minted token lives: one read of the
	// cluster, with room for a slow one.
	tokenSeconds = 600
)

// metricsReader returns the ServiceAccount whose token pod's agent wants,
// or "" when it serves /metrics without one.
func metricsReader(pod *corev1.Pod) string {
	if pod.Annotations[annotationMetricsAuth] != "kubernetes" {
		return ""
	}
	return pod.Annotations[annotationMetricsReader]
}

// tokens mints one token per ServiceAccount per read of the cluster, the
// first time an agent needs it; the agents reading at once wait for that
// one TokenRequest instead of each making their own.
type tokens struct {
	client typedcorev1.CoreV1Interface
	mu     sync.Mutex
	byKey  map[string]*minted
}

type minted struct {
	once  sync.Once
	token string
	err   error
}

func newTokens(client typedcorev1.CoreV1Interface) *tokens {
	return &tokens{client: client, byKey: map[string]*minted{}}
}

func (t *tokens) get(ctx context.Context, namespace, sa string) (string, error) {
	t.mu.Lock()
	m := t.byKey[namespace+"/"+sa]
	if m == nil {
		m = &minted{}
		t.byKey[namespace+"/"+sa] = m
	}
	t.mu.Unlock()
	m.once.Do(func() {
		exp := int64(tokenSeconds)
		tr, err := t.client.ServiceAccounts(namespace).CreateToken(ctx, sa,
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
		if err != nil {
			m.err = fmt.Errorf("minting a token of ServiceAccount %s/%s, whose tokens the agents take for /metrics (metrics.auth kubernetes; the chart's viewer role may create them): %w", namespace, sa, err)
			return
		}
		m.token = tr.Status.Token
	})
	return m.token, m.err
}
