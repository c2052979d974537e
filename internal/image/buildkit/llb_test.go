package buildkit

import (
	"context"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/proto"
)

// ops marshals st and returns its source identifiers and exec commands.
func ops(t *testing.T, st llb.State) (sources []string, execs []string) {
	t.Helper()
	def, err := st.Marshal(context.Background(), llb.LinuxAmd64)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range def.Def {
		var op pb.Op
		if err := proto.Unmarshal(b, &op); err != nil {
			t.Fatal(err)
		}
		if s := op.GetSource(); s != nil {
			sources = append(sources, s.GetIdentifier())
		}
		if e := op.GetExec(); e != nil {
			execs = append(execs, strings.Join(e.GetMeta().GetArgs(), " "))
		}
	}
	return sources, execs
}

func TestRunPatchState(t *testing.T) {
	st, err := RunPatchState("registry.example.com/pods/base:v1", []RunPatch{
		{ID: "curl", Run: []string{"apt-get install -y curl"}},
		{ID: "tz", Run: []string{"ln -sf /usr/share/zoneinfo/UTC /etc/localtime", "echo UTC > /etc/timezone"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	sources, execs := ops(t, st)
	if len(sources) != 1 || sources[0] != "docker-image://registry.example.com/pods/base:v1" {
		t.Errorf("sources = %v", sources)
	}
	want := []string{
		"/bin/sh -c apt-get install -y curl",
		"/bin/sh -c ln -sf /usr/share/zoneinfo/UTC /etc/localtime",
		"/bin/sh -c echo UTC > /etc/timezone",
	}
	if strings.Join(execs, "\n") != strings.Join(want, "\n") {
		// Ops are serialized in dependency order; compare as sets too.
		t.Errorf("execs = %q, want %q", execs, want)
	}
	if l := Labels([]string{"oom-score-adj"}, []RunPatch{{ID: "curl"}, {ID: "tz"}}); l[LabelPatches] != "curl,oom-score-adj,tz" {
		t.Errorf("labels = %v", l)
	}
}

func TestRunPatchStateErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		base    string
		patches []RunPatch
	}{
		"no base":     {"", []RunPatch{{ID: "a", Run: []string{"true"}}}},
		"no patches":  {"r/base:v1", nil},
		"no commands": {"r/base:v1", []RunPatch{{ID: "a"}}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := RunPatchState(tc.base, tc.patches); err == nil {
				t.Error("no error")
			}
		})
	}
}

// fakeResolver answers every image config request with a small config.
type fakeResolver struct{ asked []string }

func (f *fakeResolver) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	f.asked = append(f.asked, ref)
	cfg := `{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/bin:/bin"],"Labels":{"dev.podwarden.patches":"oom-score-adj"}},"rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000001"]}}`
	return ref, digest.FromString(cfg), []byte(cfg), nil
}

func TestIncrementState(t *testing.T) {
	df := "FROM registry.example.com/pods/base:v1\nRUN apt-get install -y gzip\nENV LANG=C.UTF-8\nRUN echo done\n"
	r := &fakeResolver{}
	st, img, err := IncrementState(context.Background(), []byte(df), r, ocispecs.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	sources, execs := ops(t, st)
	if len(sources) != 1 || !strings.HasPrefix(sources[0], "docker-image://registry.example.com/pods/base:v1") {
		t.Errorf("sources = %v", sources)
	}
	joined := strings.Join(execs, "\n")
	if !strings.Contains(joined, "apt-get install -y gzip") || !strings.Contains(joined, "echo done") {
		t.Errorf("execs = %q", execs)
	}
	if img.Config.Labels[LabelPatches] != "oom-score-adj" {
		t.Errorf("patch label not inherited through FROM: %v", img.Config.Labels)
	}
	if !contains(img.Config.Env, "LANG=C.UTF-8") {
		t.Errorf("env = %v", img.Config.Env)
	}
	if len(r.asked) == 0 {
		t.Error("the parent's config was not resolved")
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
