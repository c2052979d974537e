package podname

import (
	"context"
	"strings"
)

// Resolver names pods by UID from its Listers, asked once, in order, the
// first time a name is needed; an earlier Lister's answer wins. It is not
// safe for concurrent use: a command resolves names on one goroutine.
type Resolver struct {
	listers []Lister
	loaded  bool
	byUID   map[string]Pod
	errs    []error
}

// NewResolver asks listers in order (nil entries are skipped).
func NewResolver(listers ...Lister) *Resolver {
	r := &Resolver{}
	for _, l := range listers {
		if l != nil {
			r.listers = append(r.listers, l)
		}
	}
	return r
}

func (r *Resolver) load(ctx context.Context) {
	if r.loaded {
		return
	}
	r.loaded = true
	r.byUID = map[string]Pod{}
	for _, l := range r.listers {
		pods, err := l.Pods(ctx)
		if err != nil {
			// A runtime that is down is why the next Lister exists.
			r.errs = append(r.errs, err)
			continue
		}
		for _, p := range pods {
			if _, ok := r.byUID[p.UID]; !ok && p.UID != "" && p.Name != "" {
				r.byUID[p.UID] = p
			}
		}
	}
}

// Lookup returns the pod with uid; a pod no Lister knows is returned with
// only its UID, and ok false.
func (r *Resolver) Lookup(ctx context.Context, uid string) (Pod, bool) {
	if uid == "" {
		return Pod{}, false
	}
	r.load(ctx)
	p, ok := r.byUID[uid]
	if !ok {
		return Pod{UID: uid}, false
	}
	return p, true
}

// Name is namespace/name of the pod with uid, the UID itself if no Lister
// knows it, and "" for "" (a host process).
func (r *Resolver) Name(ctx context.Context, uid string) string {
	p, _ := r.Lookup(ctx, uid)
	return p.String()
}

// Match reports whether the pod with uid is the one query names: its UID,
// namespace/name, or a bare name (in any namespace).
func (r *Resolver) Match(ctx context.Context, uid, query string) bool {
	if uid == "" || query == "" {
		return false
	}
	if uid == query {
		return true
	}
	p, ok := r.Lookup(ctx, uid)
	if !ok {
		return false
	}
	if ns, name, found := strings.Cut(query, "/"); found {
		return p.Namespace == ns && p.Name == name
	}
	return p.Name == query
}

// Errors are the Listers' failures at the first lookup, for a caller that
// wants to say why names are missing.
func (r *Resolver) Errors() []error { return r.errs }
