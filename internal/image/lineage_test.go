package image

import (
	"slices"
	"strings"
	"testing"

	"podwarden/internal/image/lineage"
)

const lineageDoc = `schema: 1
families:
  base:
    repository: registry.example/pods/base
    versions:
      - name: v1
        from: ubuntu:22.04
patches:
  - id: a
    description: first
    files:
      - path: /etc/a
        mode: "0750"
        uid: 7
        gid: 8
        content: A
  - id: b
    run: ["apt-get install -y gzip"]
  - id: c
    files:
      - path: /etc/c
        content: C
`

func TestLineagePatches(t *testing.T) {
	l, err := lineage.Parse(strings.NewReader(lineageDoc), "lineage.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ids := func(ps []Patch) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.ID)
		}
		return out
	}
	for name, tc := range map[string]struct {
		get     func() ([]Patch, error)
		want    []string
		wantErr string
	}{
		"all, file order":     {get: func() ([]Patch, error) { return LineagePatches(l) }, want: []string{"a", "b", "c"}},
		"chosen, given order": {get: func() ([]Patch, error) { return LineagePatches(l, "c", "a") }, want: []string{"c", "a"}},
		"unknown id":          {get: func() ([]Patch, error) { return LineagePatches(l, "a", "zz") }, wantErr: `no patch "zz"`},
		"through b":           {get: func() ([]Patch, error) { return PatchesThrough(l, "b") }, want: []string{"a", "b"}},
		"through the last":    {get: func() ([]Patch, error) { return PatchesThrough(l, "c") }, want: []string{"a", "b", "c"}},
		"through unknown":     {get: func() ([]Patch, error) { return PatchesThrough(l, "zz") }, wantErr: `no patch "zz"`},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := tc.get()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(ids(got), tc.want) {
				t.Fatalf("got %v %v, want %v", ids(got), err, tc.want)
			}
		})
	}
	all, _ := LineagePatches(l)
	a := all[0]
	if a.Description != "first" || len(a.Files) != 1 || a.Files[0].Path != "/etc/a" || a.Files[0].Mode != 0o750 ||
		a.Files[0].UID != 7 || a.Files[0].GID != 8 || string(a.Files[0].Content) != "A" {
		t.Errorf("file patch not carried over: %+v", a)
	}
	if b := all[1]; len(b.Run) != 1 || b.Run[0] != "apt-get install -y gzip" || len(b.Files) != 0 {
		t.Errorf("RUN patch not carried over: %+v", b)
	}
}
