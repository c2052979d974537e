// Command podwarden-build is the BuildKit helper of `podwarden image
// build`. It lives in its own module so that the BuildKit client stays out
// of the podwarden binary. It reads one JSON request on stdin:
//
//	{"addr": "unix:///run/buildkit/buildkitd.sock", "target": "registry/pods/base:v3",
//	 "dockerfile": "FROM registry/pods/base:v2\nRUN ...", "insecure": false}
//
// or, for RUN patches, "base" and "patches": [{"id": "...", "run": ["..."]}]
// instead of "dockerfile"; builds it, pushes by digest, tags the target
// only if it is absent or already names the same digest, and writes
// {"digest": "sha256:...", "tagged": true} on stdout. With "repository"
// instead of "target" it only pushes by digest.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/buildkit/client"

	"podwarden/internal/image/buildkit"
)

type request struct {
	Addr       string `json:"addr"`
	Target     string `json:"target,omitempty"`
	Repository string `json:"repository,omitempty"`
	Dockerfile string `json:"dockerfile,omitempty"`
	Base       string `json:"base,omitempty"`
	Patches    []struct {
		ID  string   `json:"id"`
		Run []string `json:"run"`
	} `json:"patches,omitempty"`
	Insecure bool `json:"insecure,omitempty"`
}

type response struct {
	Digest string `json:"digest"`
	Tagged bool   `json:"tagged"`
	// Exists is true when the target held another digest (nothing tagged).
	Exists bool   `json:"exists,omitempty"`
	Error  string `json:"error,omitempty"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	resp, err := run(ctx)
	stop()
	if err != nil {
		resp.Error = err.Error()
		resp.Exists = errors.Is(err, buildkit.ErrTagExists)
	}
	_ = json.NewEncoder(os.Stdout).Encode(resp)
	if err != nil {
		fmt.Fprintln(os.Stderr, "podwarden-build:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) (response, error) {
	var req request
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		return response{}, fmt.Errorf("reading request: %w", err)
	}
	var nopts []name.Option
	if req.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	var target name.Tag
	var repo name.Repository
	var err error
	if req.Target != "" {
		if target, err = name.NewTag(req.Target, nopts...); err != nil {
			return response{}, fmt.Errorf("parsing target: %w", err)
		}
	} else if repo, err = name.NewRepository(req.Repository, nopts...); err != nil {
		return response{}, fmt.Errorf("parsing repository: %w", err)
	}
	c, err := client.New(ctx, req.Addr)
	if err != nil {
		return response{}, fmt.Errorf("connecting to buildkitd at %s: %w", req.Addr, err)
	}
	defer c.Close()
	br := buildkit.Request{Dockerfile: []byte(req.Dockerfile), Base: req.Base, Target: target, Repository: repo, Insecure: req.Insecure}
	for _, p := range req.Patches {
		br.Patches = append(br.Patches, buildkit.RunPatch{ID: p.ID, Run: p.Run})
	}
	res, err := buildkit.Build(ctx, c, br)
	if err != nil {
		return response{}, err
	}
	return response{Digest: res.Digest.String(), Tagged: res.Tagged}, nil
}
