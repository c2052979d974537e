package podname

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseLogDir(t *testing.T) {
	for dir, want := range map[string]*Pod{
		"hub_jupyter-alice_30e633b5-4140-4774-9122-1b9e140c8556": {Namespace: "hub", Name: "jupyter-alice", UID: "30e633b5-4140-4774-9122-1b9e140c8556"},
		// Static pods: the UID is the config hash.
		"kube-system_etcd-node-a_2c8d0e1f9a7b6c5d4e3f2a1b0c9d8e7f": {Namespace: "kube-system", Name: "etcd-node-a", UID: "2c8d0e1f9a7b6c5d4e3f2a1b0c9d8e7f"},
		"lost+found":     nil,
		"a_b":            nil,
		"a_b_c_d":        nil,
		"_name_uid":      nil,
		"ns__uid":        nil,
		"ns_name_":       nil,
		"":               nil,
		"ns_na\x00me_ui": nil,
	} {
		got, ok := ParseLogDir(dir)
		if (want == nil) == ok || want != nil && got != *want {
			t.Errorf("ParseLogDir(%q) = %+v, %v; want %+v", dir, got, ok, want)
		}
	}
}

func FuzzParseLogDir(f *testing.F) {
	for _, s := range []string{"hub_jupyter-alice_30e633b5", "a_b", "a__b", "_", "x_y_z_w"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dir string) {
		p, ok := ParseLogDir(dir)
		if !ok {
			return
		}
		if p.Namespace+"_"+p.Name+"_"+p.UID != dir || p.String() != p.Namespace+"/"+p.Name {
			t.Fatalf("ParseLogDir(%q) = %+v does not round-trip", dir, p)
		}
	})
}

func TestLogDir(t *testing.T) {
	pods, err := NewLogDir("testdata/pods").Pods(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range pods {
		got = append(got, p.String()+" "+p.UID)
	}
	want := []string{
		"hub/jupyter-alice 30e633b5-4140-4774-9122-1b9e140c8556",
		"kube-system/kube-proxy-x7k2p 6f1c0a9e-2b7d-4c55-9a0e-0d1f2e3a4b5c",
		"ml/train-7 a1b2c3d4-0000-4000-8000-000000000007",
	}
	if !slices.Equal(got, want) {
		t.Errorf("pods %q, want %q (lost+found and plain files skipped)", got, want)
	}
	if pods, err := NewLogDir("testdata/nonexistent").Pods(t.Context()); err != nil || len(pods) != 0 {
		t.Errorf("missing root: %v %v, want nothing and no error", pods, err)
	}
	if _, err := NewLogDir("podname.go").Pods(t.Context()); err == nil || !strings.Contains(err.Error(), "pod log directories") {
		t.Errorf("a file as root: %v, want an error saying what was read", err)
	}
}

func TestResolver(t *testing.T) {
	runtime := ListerFunc(func(context.Context) ([]Pod, error) {
		return []Pod{{Namespace: "hub", Name: "jupyter-alice-renamed", UID: "30e633b5-4140-4774-9122-1b9e140c8556"}}, nil
	})
	down := ListerFunc(func(context.Context) ([]Pod, error) { return nil, errors.New("runtime down") })
	calls := 0
	counted := ListerFunc(func(ctx context.Context) ([]Pod, error) { calls++; return NewLogDir("testdata/pods").Pods(ctx) })

	r := NewResolver(down, runtime, nil, counted)
	ctx := t.Context()
	for uid, want := range map[string]string{
		"30e633b5-4140-4774-9122-1b9e140c8556": "hub/jupyter-alice-renamed", // the runtime is asked first
		"a1b2c3d4-0000-4000-8000-000000000007": "ml/train-7",                // only the log directories know it
		"ffffffff-0000-4000-8000-00000000ffff": "ffffffff-0000-4000-8000-00000000ffff",
		"":                                     "",
	} {
		if got := r.Name(ctx, uid); got != want {
			t.Errorf("Name(%q) = %q, want %q", uid, got, want)
		}
	}
	if calls != 1 {
		t.Errorf("listed %d times, want once", calls)
	}
	if errs := r.Errors(); len(errs) != 1 || !strings.Contains(errs[0].Error(), "runtime down") {
		t.Errorf("errors %v", errs)
	}
	for _, tc := range []struct {
		uid, query string
		want       bool
	}{
		{"a1b2c3d4-0000-4000-8000-000000000007", "ml/train-7", true},
		{"a1b2c3d4-0000-4000-8000-000000000007", "train-7", true},
		{"a1b2c3d4-0000-4000-8000-000000000007", "a1b2c3d4-0000-4000-8000-000000000007", true},
		{"a1b2c3d4-0000-4000-8000-000000000007", "hub/train-7", false},
		{"a1b2c3d4-0000-4000-8000-000000000007", "train", false},
		{"", "train-7", false},
		{"ffffffff-0000-4000-8000-00000000ffff", "train-7", false},
	} {
		if got := r.Match(ctx, tc.uid, tc.query); got != tc.want {
			t.Errorf("Match(%s, %q) = %v", tc.uid, tc.query, got)
		}
	}
}
