package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"podwarden/internal/image"
	"podwarden/internal/image/lineage"
)

// errBuildUnsupported is returned when the BuildKit helper is missing.
var errBuildUnsupported = errors.New("image build is not supported by this binary alone: it needs the " +
	"podwarden-build helper (the BuildKit client, kept out of podwarden's go.mod); build it with " +
	"`cd internal/image/buildkit && go build ./cmd/podwarden-build` and put it on $PATH or pass --builder")

func newImageBuildCmd(s streams, flags *imageFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "build FAMILY VERSION",
		Short: "Build VERSION from its parent plus its increment with BuildKit and push it",
		Long: `Build VERSION from its parent version plus its increment with BuildKit (via
the podwarden-build helper) and push it to the version's ref. The image is
pushed by digest first; the tag is created only if it does not exist or
already names the identical digest: tags are never overwritten.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			// A BuildKit build can rightly take hours; the helper's
			// progress shows it is alive.
			return runImageBuild(cmd.Context(), s, timeoutFlagDefault(cmd, flags, 0), args[0], args[1])
		},
	}
	return cmd
}

// buildRequest is the helper's stdin (internal/image/buildkit/cmd/podwarden-build).
type buildRequest struct {
	Addr       string         `json:"addr"`
	Target     string         `json:"target,omitempty"`
	Repository string         `json:"repository,omitempty"`
	Dockerfile string         `json:"dockerfile,omitempty"`
	Base       string         `json:"base,omitempty"`
	Patches    []buildPatches `json:"patches,omitempty"`
	Insecure   bool           `json:"insecure,omitempty"`
}

type buildPatches struct {
	ID  string   `json:"id"`
	Run []string `json:"run"`
}

type buildResponse struct {
	Digest string `json:"digest"`
	Tagged bool   `json:"tagged"`
	Exists bool   `json:"exists"`
	Error  string `json:"error"`
}

func runImageBuild(ctx context.Context, s streams, flags *imageFlags, family, version string) error {
	r, err := startImage(ctx, flags, "")
	if err != nil {
		return err
	}
	defer r.cancel()
	v, err := findVersion(r.lineage, family, version)
	if err != nil {
		return err
	}
	if v.Parent == nil {
		return fmt.Errorf("%s %s is a family's first version (FROM %s): podwarden builds only increments on a published parent", family, version, v.From)
	}
	var df bytes.Buffer
	if err := lineage.IncrementDockerfile(&df, v); err != nil {
		return err
	}
	bin, err := builderPath(flags.Builder)
	if err != nil {
		return fmt.Errorf("%w (%v)", errBuildUnsupported, err)
	}
	req, err := json.Marshal(buildRequest{Addr: flags.BuildkitAddr, Target: v.Ref, Dockerfile: df.String(), Insecure: flags.Insecure})
	if err != nil {
		return err
	}
	resp, err := callHelper(r.ctx, bin, req, s.ErrOut)
	if err != nil {
		return err
	}
	if resp.Error != "" {
		if resp.Exists {
			return fmt.Errorf("refusing to overwrite %s: %s", v.Ref, resp.Error)
		}
		return fmt.Errorf("building %s %s: %s", family, version, resp.Error)
	}
	if resp.Tagged {
		fmt.Fprintf(s.ErrOut, "built and tagged %s\n", v.Ref)
	} else {
		fmt.Fprintf(s.ErrOut, "%s already names the identical image; tag kept\n", v.Ref)
	}
	_, err = fmt.Fprintf(s.Out, "%s@%s\n", v.Ref, resp.Digest)
	return err
}

// callHelper runs the BuildKit helper with req on stdin and decodes its
// answer; the helper's stderr (BuildKit progress) goes to errOut.
func callHelper(ctx context.Context, bin string, req []byte, errOut io.Writer) (*buildResponse, error) {
	cmd := exec.CommandContext(ctx, bin)
	cmd.Stdin = bytes.NewReader(req)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, errOut
	runErr := cmd.Run()
	var resp buildResponse
	if err := json.Unmarshal(out.Bytes(), &resp); err != nil {
		if runErr != nil {
			return nil, fmt.Errorf("running %s: %w", bin, runErr)
		}
		return nil, fmt.Errorf("reading %s output %q: %w", bin, strings.TrimSpace(out.String()), err)
	}
	return &resp, nil
}

// helperRunner applies RUN patches through the BuildKit helper.
type helperRunner struct {
	bin, addr string
	insecure  bool
}

var _ image.Runner = (*helperRunner)(nil)

func (h *helperRunner) Run(ctx context.Context, base name.Digest, repo name.Repository, patches []image.Patch) (name.Digest, error) {
	req := buildRequest{Addr: h.addr, Repository: repo.Name(), Base: base.String(), Insecure: h.insecure}
	for _, p := range patches {
		req.Patches = append(req.Patches, buildPatches{ID: p.ID, Run: p.Run})
	}
	b, err := json.Marshal(req)
	if err != nil {
		return name.Digest{}, err
	}
	resp, err := callHelper(ctx, h.bin, b, io.Discard)
	if err != nil {
		return name.Digest{}, err
	}
	if resp.Error != "" {
		return name.Digest{}, errors.New(resp.Error)
	}
	return repo.Digest(resp.Digest), nil
}
