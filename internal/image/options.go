package image

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Option configures a Patcher.
type Option func(*options) error

type options struct {
	transport http.RoundTripper
	keychain  authn.Keychain
	repo      *name.Repository
	remote    []remote.Option
	runner    Runner
	stall     time.Duration
	// guarded is transport under the watchdog and answer bounds (guard).
	guarded http.RoundTripper
}

func makeOptions(opts ...Option) (*options, error) {
	o := &options{
		transport: remote.DefaultTransport,
		keychain:  authn.DefaultKeychain,
		stall:     DefaultStallTimeout,
	}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	o.guarded = &guard{next: o.transport, stall: o.stall}
	return o, nil
}

// WithStallTimeout sets how long a registry request may move no byte
// before it fails with a *StallError (default DefaultStallTimeout).
func WithStallTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("stall timeout must be positive, got %s", d)
		}
		o.stall = d
		return nil
	}
}

// WithTransport sets the HTTP transport, e.g. a Counter's.
func WithTransport(t http.RoundTripper) Option {
	return func(o *options) error {
		if t == nil {
			return errors.New("transport must not be nil")
		}
		o.transport = t
		return nil
	}
}

// WithKeychain sets where registry credentials come from (default:
// authn.DefaultKeychain, the docker config).
func WithKeychain(k authn.Keychain) Option {
	return func(o *options) error {
		if k == nil {
			return errors.New("keychain must not be nil")
		}
		o.keychain = k
		return nil
	}
}

// WithRepository pushes patched images to repo instead of the source's
// repository. Base layers are then cross-repo mounted, not copied, on
// registries that support it.
func WithRepository(repo string) Option {
	return func(o *options) error {
		r, err := name.NewRepository(repo)
		if err != nil {
			return fmt.Errorf("parsing target repository: %w", err)
		}
		o.repo = &r
		return nil
	}
}

// Runner applies RUN patches, in order, to base with BuildKit and pushes
// the result by digest (no tag) into repo. Its output need not be
// reproducible: see Patcher.Patch.
type Runner interface {
	Run(ctx context.Context, base name.Digest, repo name.Repository, patches []Patch) (name.Digest, error)
}

// WithRunner lets the Patcher apply RUN patches through r.
func WithRunner(r Runner) Option {
	return func(o *options) error {
		if r == nil {
			return errors.New("runner must not be nil")
		}
		o.runner = r
		return nil
	}
}

// WithRemoteOptions adds options to every go-containerregistry remote
// call, e.g. remote.WithRetryBackoff.
func WithRemoteOptions(opts ...remote.Option) Option {
	return func(o *options) error {
		for _, r := range opts {
			if r == nil {
				return errors.New("remote option must not be nil")
			}
		}
		o.remote = append(o.remote, opts...)
		return nil
	}
}

// remoteOptions returns the options of one remote call under ctx.
func (o *options) remoteOptions(ctx context.Context) []remote.Option {
	ro := []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(o.guarded),
		remote.WithAuthFromKeychain(o.keychain),
	}
	return append(ro, o.remote...)
}
