package kubeevent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// client makes the few REST calls the reporter needs.
type client struct {
	host  string
	http  *http.Client
	token *tokenFile
	agent string
}

func newClient(cfg Config) (*client, error) {
	hc, err := cfg.transport()
	if err != nil {
		return nil, err
	}
	if cfg.TokenFile == "" {
		return nil, errors.New("no token file")
	}
	tf := &tokenFile{path: cfg.TokenFile, now: time.Now}
	if _, err := tf.get(); err != nil {
		return nil, err
	}
	agent := cfg.UserAgent
	if agent == "" {
		agent = Component
	}
	return &client{host: cfg.Host, http: hc, token: tf, agent: agent}, nil
}

// StatusError is an API server's refusal (a metav1.Status body).
type StatusError struct {
	Method, Path string
	Code         int
	Reason       string // e.g. NotFound, Forbidden, AlreadyExists
	Message      string
}

func (e *StatusError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Code)
	}
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Code, e.Reason, msg)
}

func isStatus(err error, code int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == code
}

// retryable reports whether a failed request may succeed if repeated:
// transport errors, throttling and server errors, not refusals.
func retryable(err error) bool {
	var se *StatusError
	if !errors.As(err, &se) {
		return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	}
	return se.Code == http.StatusTooManyRequests || se.Code >= 500
}

// do sends body (JSON-encoded unless nil) and decodes the reply into out
// (unless nil).
func (c *client) do(ctx context.Context, method, path, contentType string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.host+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	tok, err := c.token.get()
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.agent)
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read reply: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		se := &StatusError{Method: method, Path: path, Code: resp.StatusCode}
		var st struct{ Reason, Message string }
		if json.Unmarshal(b, &st) == nil {
			se.Reason, se.Message = st.Reason, st.Message
		}
		return se
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode reply: %w", method, path, err)
		}
	}
	return nil
}

// pod is the part of a Pod the reporter reads.
type pod struct {
	Metadata struct {
		UID string `json:"uid"`
	} `json:"metadata"`
	Spec struct {
		Containers          []named `json:"containers"`
		InitContainers      []named `json:"initContainers"`
		EphemeralContainers []named `json:"ephemeralContainers"`
	} `json:"spec"`
}

type named struct {
	Name string `json:"name"`
}

func (c *client) getPod(ctx context.Context, namespace, name string) (*pod, error) {
	p := &pod{}
	path := "/api/v1/namespaces/" + url.PathEscape(namespace) + "/pods/" + url.PathEscape(name)
	if err := c.do(ctx, http.MethodGet, path, "", nil, p); err != nil {
		return nil, err
	}
	return p, nil
}

// event is a core/v1 Event as the API server takes it. Only the fields
// podwarden sets; the server fills in the rest.
type event struct {
	APIVersion     string    `json:"apiVersion"`
	Kind           string    `json:"kind"`
	Metadata       eventMeta `json:"metadata"`
	InvolvedObject objectRef `json:"involvedObject"`
	Reason         string    `json:"reason"`
	Message        string    `json:"message"`
	Source         source    `json:"source"`
	// metav1.Time's format: RFC 3339, UTC, whole seconds.
	FirstTimestamp string `json:"firstTimestamp"`
	LastTimestamp  string `json:"lastTimestamp"`
	Count          int32  `json:"count"`
	Type           string `json:"type"`
	// core/v1 spells ReportingController "reportingComponent".
	ReportingController string `json:"reportingComponent"`
	ReportingInstance   string `json:"reportingInstance"`
}

type eventMeta struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
}

type objectRef struct {
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
	UID        string `json:"uid"`
	APIVersion string `json:"apiVersion"`
	FieldPath  string `json:"fieldPath,omitempty"`
}

type source struct {
	Component string `json:"component"`
	Host      string `json:"host"`
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func eventsPath(namespace string) string {
	return "/api/v1/namespaces/" + url.PathEscape(namespace) + "/events"
}

func (c *client) createEvent(ctx context.Context, e *event) error {
	return c.do(ctx, http.MethodPost, eventsPath(e.Metadata.Namespace), "application/json", e, nil)
}

// patchEvent updates a posted Event's count, message and last time, as
// client-go's recorder does for repeats.
func (c *client) patchEvent(ctx context.Context, e *event) error {
	patch := map[string]any{"count": e.Count, "message": e.Message, "lastTimestamp": e.LastTimestamp}
	path := eventsPath(e.Metadata.Namespace) + "/" + url.PathEscape(e.Metadata.Name)
	return c.do(ctx, http.MethodPatch, path, "application/strategic-merge-patch+json", patch, nil)
}
