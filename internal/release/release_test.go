package release

import (
	"bytes"
	"context"
	"crypto/sha256"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"podwarden/internal/agentimage"
)

// repoRoot is the module root, where the real README.md and chart are.
const repoRoot = "../.."

// The binaries are a tiny program built with the release's recipe
// (agentimage.BuildStatic: static, -trimpath, no build ID) for each
// platform and shipped under the three commands' names: cross-compiling
// podwarden's real binaries for two platforms takes minutes on a busy CI
// machine, and what this test checks (platform, packaging,
// reproducibility) is the same for any Go binary. `make release` builds
// the real ones.
func tinyBinaries(t *testing.T) Binaries {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bins := Binaries{}
	for _, arch := range agentimage.Arches {
		out := filepath.Join(dir, arch)
		if err := agentimage.BuildStatic(ctx, repoRoot, "./internal/release/testdata/tiny", "v0.2.0", arch, out); err != nil {
			t.Fatal(err)
		}
		bins[arch] = map[string]string{}
		for _, c := range Commands {
			bins[arch][c] = out
		}
	}
	return bins
}

func testOptions() Options {
	return Options{Version: "v0.2.0", Registry: "registry.example.com/podwarden", Created: time.Unix(1765000000, 0), Revision: "0123abc", Repo: repoRoot}
}

// TestPackage runs the release path twice from the same binaries and
// checks what a user downloads: the files, SHA256SUMS, both platforms in
// the image index with binaries of the right ELF machine, the SBOMs, and
// two runs agreeing byte for byte.
func TestPackage(t *testing.T) {
	bins := tinyBinaries(t)
	o := testOptions()
	ctx := context.Background()
	dist := filepath.Join(t.TempDir(), "dist")
	res, err := Package(ctx, o, bins, dist)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"SHA256SUMS",
		"podwarden-0.2.0.tgz",
		"podwarden-image.spdx.json",
		"podwarden-image/",
	}
	for _, arch := range agentimage.Arches {
		want = append(want, "podwarden_0.2.0_linux_"+arch+".tar.gz")
		for _, c := range Commands {
			want = append(want, "podwarden_0.2.0_linux_"+arch+"_"+c+".spdx.json")
		}
	}
	slices.Sort(want)
	if !slices.Equal(res.Files, want) {
		t.Errorf("release files\n got %q\nwant %q", res.Files, want)
	}
	checkSums(t, dist)
	for _, arch := range agentimage.Arches {
		checkTarball(t, filepath.Join(dist, "podwarden_0.2.0_linux_"+arch+".tar.gz"), arch, o.Created)
	}
	checkLayout(t, filepath.Join(dist, "podwarden-image"), res)
	checkSBOMs(t, dist, res)

	again := filepath.Join(t.TempDir(), "dist")
	if _, err := Package(ctx, o, bins, again); err != nil {
		t.Fatal(err)
	}
	if a, b := treeSums(t, dist), treeSums(t, again); !maps.Equal(a, b) {
		t.Errorf("two runs differ:\n%v\n%v", a, b)
	}

	if _, err := Package(ctx, o, bins, dist); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("writing over an existing release: %v, want refused", err)
	}
}

// TestPackageRefuses: what must never be published.
func TestPackageRefuses(t *testing.T) {
	bins := tinyBinaries(t)
	swapped := Binaries{"amd64": bins["arm64"], "arm64": bins["amd64"]}
	notELF := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	missing := Binaries{"amd64": bins["amd64"], "arm64": {"podwarden": bins["arm64"]["podwarden"]}}
	script := Binaries{"amd64": {"podwarden": notELF, "podwarden-agent": notELF, "podwarden-cluster": notELF}, "arm64": bins["arm64"]}
	for name, tc := range map[string]struct {
		edit func(*Options)
		bins Binaries
		want string
	}{
		"git describe version":   {func(o *Options) { o.Version = "b65f35c-dirty" }, bins, "b65f35c-dirty"},
		"version without v":      {func(o *Options) { o.Version = "0.2.0" }, bins, "0.2.0"},
		"registry with a scheme": {func(o *Options) { o.Registry = "https://ghcr.io/podwarden" }, bins, "https://"},
		"arm64 binary as amd64":  {nil, swapped, "EM_AARCH64"},
		"not an ELF binary":      {nil, script, "not an ELF"},
		"a binary missing":       {nil, missing, "no podwarden-agent binary for linux/arm64"},
	} {
		t.Run(name, func(t *testing.T) {
			o := testOptions()
			if tc.edit != nil {
				tc.edit(&o)
			}
			_, err := Package(context.Background(), o, tc.bins, filepath.Join(t.TempDir(), "dist"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want one naming %q", err, tc.want)
			}
		})
	}
}

// TestBuildReproducible: two full builds (go build -a: nothing from the
// build cache) of one program from copies of it at two paths are
// byte-identical: no path, time or build ID gets into the binary.
func TestBuildReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("rebuilds the runtime from scratch, twice")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	src, err := os.ReadFile("testdata/tiny/main.go")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOFLAGS", "-a")
	var out [2][]byte
	for i, where := range []string{"one", "another/place"} {
		mod := filepath.Join(t.TempDir(), where)
		if err := os.MkdirAll(mod, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mod, "main.go"), src, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module tiny\n\ngo 1.26\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(mod, "tiny")
		if err := agentimage.BuildStatic(ctx, mod, ".", "v0.2.0", "amd64", bin); err != nil {
			t.Fatal(err)
		}
		if out[i], err = os.ReadFile(bin); err != nil {
			t.Fatal(err)
		}
	}
	if len(out[0]) == 0 || !bytes.Equal(out[0], out[1]) {
		t.Errorf("two builds differ: %d and %d bytes, sha256 %x %x", len(out[0]), len(out[1]), sha256.Sum256(out[0]), sha256.Sum256(out[1]))
	}
}

// TestNotInShippedBinaries: the release engine and the Helm code it uses
// stay out of the three binaries (every node pays for their pages).
func TestNotInShippedBinaries(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, c := range Commands {
		cmd := exec.CommandContext(ctx, "go", "list", "-e", "-deps", "./cmd/"+c)
		cmd.Dir = repoRoot
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps ./cmd/%s: %v", c, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			if dep == "podwarden/internal/release" || strings.HasPrefix(dep, "helm.sh/") || strings.HasPrefix(dep, "github.com/spdx/") {
				t.Errorf("./cmd/%s links %s", c, dep)
			}
		}
	}
}
