package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"podwarden/internal/image"
	"podwarden/internal/image/webhook"
)

type imageWebhookFlags struct {
	Listen  string
	TLSCert string
	TLSKey  string
	Budget  time.Duration
	AllRepo bool
}

func newImageWebhookCmd(s streams, flags *imageFlags) *cobra.Command {
	wf := &imageWebhookFlags{}
	cmd := &cobra.Command{
		Use:   "webhook",
		Short: "Serve a mutating admission webhook that rewrites pod images to their patched refs",
		Long: `Serve a mutating admission webhook (POST /mutate, admission.k8s.io/v1) that
rewrites the images of created Pods to their patched refs. Images that cannot
be patched within --budget keep their ref; the pod gets a warning and the
podwarden.dev/image-patch annotation. Register it with failurePolicy: Ignore
and timeoutSeconds above the budget (docs/image.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runImageWebhook(cmd.Context(), s, flags, wf)
		},
	}
	f := cmd.Flags()
	f.StringVar(&wf.Listen, "listen", "127.0.0.1:8443", "address to serve HTTPS on")
	f.StringVar(&wf.TLSCert, "tls-cert", "", "TLS certificate file (required)")
	f.StringVar(&wf.TLSKey, "tls-key", "", "TLS key file (required)")
	f.DurationVar(&wf.Budget, "budget", 8*time.Second, "time budget per admission request")
	f.BoolVar(&wf.AllRepo, "all-repositories", false, "patch images from any repository, not only the lineage's families")
	return cmd
}

// newImageWebhookHandler builds the handler from the lineage file. The
// webhook bounds each request by --budget, not the whole server by
// --timeout, so the env's context is not used.
func newImageWebhookHandler(flags *imageFlags, wf *imageWebhookFlags) (http.Handler, error) {
	env, err := newImageEnv(flags)
	if err != nil {
		return nil, err
	}
	patches, err := image.LineagePatches(env.lineage)
	if err != nil {
		return nil, err
	}
	opts := []webhook.Option{webhook.WithBudget(wf.Budget), webhook.WithNameOptions(env.opts...)}
	if !wf.AllRepo {
		var repos []string
		for _, f := range env.lineage.Families {
			repos = append(repos, f.Repository)
		}
		opts = append(opts, webhook.WithRepositories(repos...))
	}
	h, err := webhook.New(env.patcher, patches, opts...)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/mutate", h)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	return mux, nil
}

func runImageWebhook(ctx context.Context, s streams, flags *imageFlags, wf *imageWebhookFlags) error {
	if wf.TLSCert == "" || wf.TLSKey == "" {
		return errors.New("--tls-cert and --tls-key are required: the API server calls webhooks over HTTPS")
	}
	h, err := newImageWebhookHandler(flags, wf)
	if err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ln, err := net.Listen("tcp", wf.Listen)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	// The API server sends one small review and waits --budget for the
	// answer; anything slower or bigger is not it.
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      wf.Budget + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	fmt.Fprintf(s.ErrOut, "podwarden image webhook: serving https://%s/mutate\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, wf.TLSCert, wf.TLSKey) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving webhook: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}
