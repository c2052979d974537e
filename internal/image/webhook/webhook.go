package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"podwarden/internal/image"
)

// AnnotationResult is set on every Pod whose images were considered:
// one line per container, "NAME: OLD -> NEW" or "NAME: kept OLD: REASON".
const AnnotationResult = "podwarden.dev/image-patch"

// Resolver returns the ref a pod should run; *image.Patcher is one.
type Resolver interface {
	Resolve(ctx context.Context, ref name.Reference, patches []image.Patch, timeout time.Duration) *image.Resolution
}

var _ Resolver = (*image.Patcher)(nil)

// Option configures a Handler.
type Option func(*options) error

type options struct {
	budget   time.Duration
	repos    map[string]bool
	nameOpts []name.Option
}

// WithBudget bounds the time spent on one admission request (default 8s,
// below the API server's default webhook timeout of 10s).
func WithBudget(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return errors.New("budget must be positive")
		}
		o.budget = d
		return nil
	}
}

// WithRepositories limits patching to images in these repositories (the
// lineage's families). Without it every image is considered.
func WithRepositories(repos ...string) Option {
	return func(o *options) error {
		for _, r := range repos {
			rep, err := name.NewRepository(r)
			if err != nil {
				return fmt.Errorf("parsing repository: %w", err)
			}
			o.repos[rep.Name()] = true
		}
		return nil
	}
}

// WithNameOptions sets how image refs are parsed, e.g. name.Insecure.
func WithNameOptions(opts ...name.Option) Option {
	return func(o *options) error {
		o.nameOpts = append(o.nameOpts, opts...)
		return nil
	}
}

// Handler serves AdmissionReview requests.
type Handler struct {
	r       Resolver
	patches []image.Patch
	o       *options
}

var _ http.Handler = (*Handler)(nil)

// New returns a Handler that applies patches through r.
func New(r Resolver, patches []image.Patch, opts ...Option) (*Handler, error) {
	if r == nil {
		return nil, errors.New("resolver must not be nil")
	}
	o := &options{budget: 8 * time.Second, repos: map[string]bool{}}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	return &Handler{r: r, patches: patches, o: o}, nil
}

// Wire types of admission.k8s.io/v1, only the fields used here.
type review struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Request    *request  `json:"request,omitempty"`
	Response   *response `json:"response,omitempty"`
}

type request struct {
	UID       string          `json:"uid"`
	Kind      groupVK         `json:"kind"`
	Operation string          `json:"operation"`
	Object    json.RawMessage `json:"object"`
	DryRun    bool            `json:"dryRun"`
}

type groupVK struct {
	Group   string `json:"group"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
}

type response struct {
	UID       string   `json:"uid"`
	Allowed   bool     `json:"allowed"`
	PatchType string   `json:"patchType,omitempty"`
	Patch     []byte   `json:"patch,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
}

type pod struct {
	Metadata struct {
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		InitContainers []container `json:"initContainers"`
		Containers     []container `json:"containers"`
	} `json:"spec"`
}

type container struct {
	Name  string `json:"name"`
	Image string `json:"image"`
}

type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST an AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	var in review
	if err := json.NewDecoder(io.LimitReader(r.Body, 8<<20)).Decode(&in); err != nil || in.Request == nil {
		http.Error(w, fmt.Sprintf("decoding AdmissionReview: %v", err), http.StatusBadRequest)
		return
	}
	resp := h.admit(r.Context(), in.Request)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(review{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview", Response: resp})
}

// admit answers one admission request. It always allows the pod.
func (h *Handler) admit(ctx context.Context, req *request) *response {
	resp := &response{UID: req.UID, Allowed: true}
	if req.Kind.Kind != "Pod" || req.Operation != "CREATE" {
		return resp
	}
	if req.DryRun {
		// Patching pushes to a registry: a side effect dry runs must not have.
		resp.Warnings = []string{"podwarden: dry run: images are not patched"}
		return resp
	}
	var p pod
	if err := json.Unmarshal(req.Object, &p); err != nil {
		resp.Warnings = []string{"podwarden: cannot read pod, images left as they are: " + err.Error()}
		return resp
	}
	ctx, cancel := context.WithTimeout(ctx, h.o.budget)
	defer cancel()

	type job struct {
		path, name, image string
		out               string
		reason            error
	}
	var jobs []*job
	for i, c := range p.Spec.InitContainers {
		jobs = append(jobs, &job{path: fmt.Sprintf("/spec/initContainers/%d/image", i), name: c.Name, image: c.Image})
	}
	for i, c := range p.Spec.Containers {
		jobs = append(jobs, &job{path: fmt.Sprintf("/spec/containers/%d/image", i), name: c.Name, image: c.Image})
	}
	var wg sync.WaitGroup
	var considered []*job
	for _, j := range jobs {
		ref, err := name.ParseReference(j.image, h.o.nameOpts...)
		if err != nil || (len(h.o.repos) > 0 && !h.o.repos[ref.Context().Name()]) {
			continue
		}
		considered = append(considered, j)
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := h.r.Resolve(ctx, ref, h.patches, h.o.budget)
			j.reason = res.Reason
			if res.Result != nil && !res.Result.NoOp() {
				j.out = res.Result.Ref.String() + "@" + res.Result.Digest.String()
			}
		}()
	}
	wg.Wait()
	if len(considered) == 0 {
		return resp
	}
	var ops []jsonPatchOp
	var lines []string
	for _, j := range considered {
		switch {
		case j.out != "":
			ops = append(ops, jsonPatchOp{Op: "replace", Path: j.path, Value: j.out})
			lines = append(lines, fmt.Sprintf("%s: %s -> %s", j.name, j.image, j.out))
		case j.reason != nil:
			lines = append(lines, fmt.Sprintf("%s: kept %s: %v", j.name, j.image, j.reason))
			resp.Warnings = append(resp.Warnings, fmt.Sprintf("podwarden: container %s keeps unpatched image %s: %v", j.name, j.image, j.reason))
		default:
			lines = append(lines, fmt.Sprintf("%s: %s has every patch", j.name, j.image))
		}
	}
	sort.Strings(lines)
	note := strings.Join(lines, "\n")
	if p.Metadata.Annotations == nil {
		ops = append(ops, jsonPatchOp{Op: "add", Path: "/metadata/annotations", Value: map[string]string{AnnotationResult: note}})
	} else {
		ops = append(ops, jsonPatchOp{Op: "add", Path: "/metadata/annotations/" + strings.ReplaceAll(AnnotationResult, "/", "~1"), Value: note})
	}
	b, err := json.Marshal(ops)
	if err != nil {
		resp.Warnings = append(resp.Warnings, "podwarden: "+err.Error())
		return resp
	}
	resp.PatchType, resp.Patch = "JSONPatch", b
	return resp
}
