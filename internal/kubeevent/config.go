package kubeevent

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// ServiceAccountDir is where the kubelet mounts a pod's token and CA.
const ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// Config says how to reach and authenticate to the API server.
type Config struct {
	// Host is the API server's URL, e.g. https://10.96.0.1:443.
	Host string
	// TokenFile holds the bearer token. It is re-read (at most once a
	// minute) because the kubelet rotates projected tokens.
	TokenFile string
	// CAFile holds the PEM CA bundle that signed the API server's
	// serving certificate.
	CAFile string
	// UserAgent names the client in the API server's audit log.
	UserAgent string
}

// InCluster is the Config of a pod: the API server from the environment
// the kubelet sets (getenv is os.Getenv outside tests), the token and CA
// from dir (ServiceAccountDir).
func InCluster(dir string, getenv func(string) string) (Config, error) {
	host, port := getenv("KUBERNETES_SERVICE_HOST"), getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return Config{}, errors.New("not in a pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set")
	}
	cfg := Config{
		Host:      "https://" + net.JoinHostPort(host, port),
		TokenFile: filepath.Join(dir, "token"),
		CAFile:    filepath.Join(dir, "ca.crt"),
	}
	for _, f := range []string{cfg.TokenFile, cfg.CAFile} {
		if _, err := os.Stat(f); err != nil {
			return Config{}, fmt.Errorf("service account credentials: %w", err)
		}
	}
	return cfg, nil
}

// transport returns an HTTP client that trusts only cfg.CAFile.
func (cfg Config) transport() (*http.Client, error) {
	if !strings.HasPrefix(cfg.Host, "https://") {
		return nil, fmt.Errorf("API server %q: want an https:// URL", cfg.Host)
	}
	pem, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA bundle %s: no PEM certificates in it", cfg.CAFile)
	}
	return &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
		},
		Timeout: 30 * time.Second,
	}, nil
}

// tokenFile caches a token file, re-reading it after tokenReload as
// client-go does: the kubelet replaces projected tokens well before they
// expire (at 80% of their life, which is at least 10 minutes).
type tokenFile struct {
	path string
	now  func() time.Time

	mu    sync.Mutex
	token string
	read  time.Time
}

const tokenReload = time.Minute

func (t *tokenFile) get() (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != "" && t.now().Sub(t.read) < tokenReload {
		return t.token, nil
	}
	b, err := os.ReadFile(t.path)
	if err != nil {
		if t.token != "" {
			return t.token, nil // keep the last token; the next call retries
		}
		return "", fmt.Errorf("read token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", t.path)
	}
	t.token, t.read = tok, t.now()
	return tok, nil
}
