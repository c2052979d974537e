package metricsserver

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
)

// TokenHeader carries a bearer token ("Bearer <token>") for requests that
// come through the API server's pod proxy: the API server removes the
// Authorization header of every request it authenticates (apiserver's
// WithAuthentication filter) and forwards the other headers to the pod.
const TokenHeader = "X-Podwarden-Authorization"

// API makes the API server's create calls (*kubeevent.RESTClient).
type API interface {
	Create(ctx context.Context, path string, body, out any) error
}

// AuthOptions bound the reviews' cost. Zero fields take the defaults.
type AuthOptions struct {
	// AllowTTL is how long an allowed token is trusted before it is
	// reviewed again (default 1m: a revoked binding stops working within
	// a minute).
	AllowTTL time.Duration
	// DenyTTL is how long a refused token is refused without asking
	// (default 10s).
	DenyTTL time.Duration
	// StaleTTL is how old an allowed decision may be and still stand
	// when it cannot be checked again: the review rate is spent (a
	// client spraying tokens) or the API server fails (default 5m). A
	// steady scraper is not locked out by someone else's garbage.
	StaleTTL time.Duration
	// CacheSize bounds the decisions kept (default 1024).
	CacheSize int
	// ReviewsPerSecond and ReviewBurst bound the reviews sent to the API
	// server (default 5/s, burst 10); a request over the bound gets 429.
	ReviewsPerSecond float64
	ReviewBurst      int
	// Timeout bounds one TokenReview + SubjectAccessReview (default 5s).
	Timeout time.Duration
}

func (o *AuthOptions) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.AllowTTL, time.Minute)
	def(&o.DenyTTL, 10*time.Second)
	def(&o.StaleTTL, 5*time.Minute)
	def(&o.Timeout, 5*time.Second)
	if o.CacheSize <= 0 {
		o.CacheSize = 1024
	}
	if o.ReviewsPerSecond <= 0 {
		o.ReviewsPerSecond = 5
	}
	if o.ReviewBurst <= 0 {
		o.ReviewBurst = 10
	}
}

// KubeAuth authenticates a request's bearer token with a TokenReview and
// authorises it with a SubjectAccessReview for verb get on the protected
// path as a non-resource URL: RBAC's
//
//	rules: [{nonResourceURLs: ["/metrics"], verbs: ["get"]}]
//
// which Prometheus's usual ClusterRole already has for kubelet's metrics.
type KubeAuth struct {
	api   API
	o     AuthOptions
	log   *slog.Logger
	now   func() time.Time
	limit *rate.Limiter
	group singleflight.Group

	mu    sync.Mutex
	cache map[cacheKey]decision
}

type cacheKey struct {
	token [sha256.Size]byte // never the token itself
	path  string
}

type decision struct {
	code   int // http.StatusOK, StatusUnauthorized or StatusForbidden
	user   string
	reason string
	at     time.Time
}

// NewKubeAuth returns an authoriser that asks api.
func NewKubeAuth(api API, o AuthOptions, log *slog.Logger) *KubeAuth {
	o.defaults()
	return &KubeAuth{
		api: api, o: o, log: log, now: time.Now,
		limit: rate.NewLimiter(rate.Limit(o.ReviewsPerSecond), o.ReviewBurst),
		cache: make(map[cacheKey]decision),
	}
}

// Protect serves h only to requests whose token may get path (a
// non-resource URL such as /metrics). No token is a 401 without asking
// the API server; a token it does not accept is a 401, one it accepts
// but RBAC does not allow is a 403.
func (k *KubeAuth) Protect(path string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := bearer(r)
		if tok == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="podwarden-agent"`)
			http.Error(w, "401 Unauthorized: a Kubernetes bearer token is required (docs/agent.md, Metrics)", http.StatusUnauthorized)
			return
		}
		d, err := k.decide(r.Context(), tok, path)
		switch {
		case errors.Is(err, errRateLimited):
			w.Header().Set("Retry-After", "1")
			http.Error(w, "429 Too Many Requests: too many tokens to review", http.StatusTooManyRequests)
			return
		case err != nil:
			k.log.Warn("metrics: cannot review a scrape's token", "err", err)
			http.Error(w, "503 Service Unavailable: cannot check the token with the API server", http.StatusServiceUnavailable)
			return
		}
		switch d.code {
		case http.StatusOK:
			h.ServeHTTP(w, r)
		case http.StatusUnauthorized:
			w.Header().Set("WWW-Authenticate", `Bearer realm="podwarden-agent", error="invalid_token"`)
			http.Error(w, "401 Unauthorized: the API server does not accept this token", http.StatusUnauthorized)
		default:
			http.Error(w, fmt.Sprintf("403 Forbidden: %s may not get %s", d.user, path), http.StatusForbidden)
		}
	})
}

// bearer returns the request's bearer token, from Authorization or, for
// requests through the API server's pod proxy, TokenHeader.
func bearer(r *http.Request) string {
	v := r.Header.Get("Authorization")
	if v == "" {
		v = r.Header.Get(TokenHeader)
	}
	scheme, tok, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

var errRateLimited = errors.New("review rate exceeded")

func (k *KubeAuth) decide(ctx context.Context, tok, path string) (decision, error) {
	key := cacheKey{token: sha256.Sum256([]byte(tok)), path: path}
	now := k.now()
	k.mu.Lock()
	d, cached := k.cache[key]
	k.mu.Unlock()
	if cached {
		ttl := k.o.DenyTTL
		if d.code == http.StatusOK {
			ttl = k.o.AllowTTL
		}
		if now.Sub(d.at) < ttl {
			return d, nil
		}
	}
	stale := func(err error) (decision, error) {
		if cached && d.code == http.StatusOK && now.Sub(d.at) < k.o.StaleTTL {
			return d, nil
		}
		return decision{}, err
	}
	// Concurrent requests with one token (Prometheus replicas, a burst
	// of probes) share one review.
	v, err, _ := k.group.Do(string(key.token[:])+"\x00"+path, func() (any, error) {
		if !k.limit.Allow() {
			return decision{}, errRateLimited
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), k.o.Timeout)
		defer cancel()
		d, err := k.review(ctx, tok, path)
		if err != nil {
			return decision{}, err
		}
		d.at = k.now()
		k.store(key, d)
		return d, nil
	})
	if err != nil {
		return stale(err)
	}
	return v.(decision), nil
}

// store keeps d, making room by dropping expired decisions, then any one:
// the review rate bounds how fast entries arrive, so with the default
// TTLs the cache holds a few hundred at most.
func (k *KubeAuth) store(key cacheKey, d decision) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.cache) >= k.o.CacheSize {
		now := k.now()
		for ck, cd := range k.cache {
			if now.Sub(cd.at) >= max(k.o.StaleTTL, k.o.DenyTTL) {
				delete(k.cache, ck)
			}
		}
		for ck := range k.cache {
			if len(k.cache) < k.o.CacheSize {
				break
			}
			delete(k.cache, ck)
		}
	}
	k.cache[key] = d
}

// CacheLen is the number of decisions kept.
func (k *KubeAuth) CacheLen() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.cache)
}
