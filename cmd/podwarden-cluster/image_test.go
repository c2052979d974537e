package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// runImage runs `podwarden image args...` into buffers.
func runImage(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newImageCmd(streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

const testLineage = `schema: 1
families:
  base:
    repository: %[1]s/pods/base
    versions:
      - name: v1
        from: ubuntu:22.04
        increment: |
          RUN apt-get update && apt-get install -y curl
      - name: v2
        increment: |
          RUN apt-get install -y gzip
patches:
  - id: oom-score-adj
    files:
      - path: /usr/local/bin/pod-start
        mode: "0755"
        content: |
          #!/bin/sh
          echo 900 > /proc/self/oom_score_adj
          exec /sbin/init
  - id: motd
    files:
      - path: /etc/motd
        content: hello
`

// setup starts a registry with base:v1 and base:v2 (v2 built on v1) and
// writes a lineage file naming them.
func setup(t *testing.T) (host, lineageFile string) {
	t.Helper()
	s := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(s.Close)
	host = strings.TrimPrefix(s.URL, "http://")
	for _, v := range []string{"v1", "v2"} {
		img, err := random.Image(64*1024, 2)
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := name.ParseReference(host + "/pods/base:" + v)
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
	}
	lineageFile = filepath.Join(t.TempDir(), "lineage.yaml")
	if err := os.WriteFile(lineageFile, []byte(fmt.Sprintf(testLineage, host)), 0o644); err != nil {
		t.Fatal(err)
	}
	return host, lineageFile
}

func TestImageValidate(t *testing.T) {
	_, good := setup(t)
	bad := filepath.Join(t.TempDir(), "lineage.yaml")
	os.WriteFile(bad, []byte("schema: 1\nfamilies:\n  base:\n    repository: r/base\n    versions:\n      - name: v1\n        from: u:1\n      - name: v2\n        from: v7\n"), 0o644)
	for name, tc := range map[string]struct {
		file    string
		wantOut string
		wantErr string
	}{
		"good":    {good, "ok: 1 families, 2 versions, 2 patches", ""},
		"example": {"../../deploy/examples/lineage.yaml", "ok: 2 families, 4 versions, 2 patches", ""},
		"bad":     {bad, "", "lineage.yaml:9: families.base.versions[1].from: unknown version \"v7\""},
		"none":    {filepath.Join(t.TempDir(), "nope.yaml"), "", "reading lineage file"},
	} {
		t.Run(name, func(t *testing.T) {
			out, _, err := runImage(t, "validate", "-f", tc.file)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !strings.Contains(out, tc.wantOut) {
				t.Fatalf("out %q err %v", out, err)
			}
		})
	}
}

func TestImageDockerfile(t *testing.T) {
	host, lf := setup(t)
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"merged":    {[]string{"dockerfile", "base", "v2"}, "FROM ubuntu:22.04\n\n# --- base v1 (" + host + "/pods/base:v1) ---\nRUN apt-get update && apt-get install -y curl\n\n# --- base v2"},
		"increment": {[]string{"dockerfile", "--increment", "base", "v2"}, "FROM " + host + "/pods/base:v1\nRUN apt-get install -y gzip\n"},
	} {
		t.Run(name, func(t *testing.T) {
			out, _, err := runImage(t, append(tc.args, "-f", lf)...)
			if err != nil || !strings.Contains(out, tc.want) {
				t.Fatalf("out:\n%s\nerr %v, want %q", out, err, tc.want)
			}
		})
	}
	if _, _, err := runImage(t, "dockerfile", "base", "v9", "-f", lf); err == nil || !strings.Contains(err.Error(), `no version "v9"`) {
		t.Errorf("unknown version: %v", err)
	}
}

var pinnedRE = regexp.MustCompile(`^(\S+:v1-pw-[0-9a-f]{12})@sha256:[0-9a-f]{64}\n$`)

func TestImagePatchResolveStatus(t *testing.T) {
	host, lf := setup(t)
	v1 := host + "/pods/base:v1"

	out, _, err := runImage(t, "status", "-f", lf)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(out, "pending"); got != 4 || !strings.HasPrefix(out, "BASE") {
		t.Errorf("status before: %d pending, want 4:\n%s", got, out)
	}
	if bare, _, err := runImage(t, "status", "--no-headers", "-f", lf); err != nil || strings.Contains(bare, "BASE") ||
		strings.Count(bare, "\n") != strings.Count(out, "\n")-1 {
		t.Errorf("status --no-headers: %v\n%s", err, bare)
	}

	out, errOut, err := runImage(t, "patch", v1, "--patches", "oom-score-adj", "-f", lf)
	if err != nil {
		t.Fatal(err)
	}
	m := pinnedRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("patch printed %q", out)
	}
	if !strings.Contains(errOut, "applied oom-score-adj, pushed") {
		t.Errorf("stderr: %s", errOut)
	}
	img, err := remote.Image(mustRef(t, m[1]))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatal(err)
	}

	// Patching the patched image is a no-op that returns the same ref.
	again, errOut, err := runImage(t, "patch", m[1], "--patches", "oom-score-adj", "-f", lf)
	if err != nil || again != out || !strings.Contains(errOut, "already has oom-score-adj") {
		t.Errorf("patching the patched image: %q %q %v", again, errOut, err)
	}

	// resolve applies every patch.
	res, errOut, err := runImage(t, "resolve", v1, "-f", lf)
	if err != nil || !pinnedRE.MatchString(res) || res == out {
		t.Errorf("resolve: %q %q %v", res, errOut, err)
	}

	out, _, err = runImage(t, "status", "-f", lf)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || strings.Count(lines[1], "applied") != 2 || strings.Count(lines[2], "pending") != 2 {
		t.Errorf("status after:\n%s", out)
	}
}

func TestImageResolveFallsBack(t *testing.T) {
	_, lf := setup(t)
	// Nothing listens on port 1: the original ref comes back, with the reason.
	out, errOut, err := runImage(t, "resolve", "127.0.0.1:1/pods/base:v1", "-f", lf, "--timeout", "2s")
	if err != nil || out != "127.0.0.1:1/pods/base:v1\n" || !strings.Contains(errOut, "connection refused") {
		t.Errorf("resolve: %q %q %v", out, errOut, err)
	}
}

func TestImageBackport(t *testing.T) {
	host, lf := setup(t)
	out, errOut, err := runImage(t, "backport", "motd", "-f", lf)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, "-pw-") != 2 || !strings.Contains(errOut, "[####################] [2/2] "+host+"/pods/base:v2: applied oom-score-adj,motd") {
		t.Errorf("backport:\n%s\n%s", out, errOut)
	}
	// resolve now finds the backported tags: nothing new is pushed.
	res, errOut, err := runImage(t, "resolve", host+"/pods/base:v2", "-f", lf)
	if err != nil || !strings.Contains(out, strings.TrimSpace(res)) || !strings.Contains(errOut, "already existed") {
		t.Errorf("resolve after backport: %q %q %v\nbackport: %s", res, errOut, err, out)
	}
	if _, _, err := runImage(t, "backport", "nope", "-f", lf); err == nil {
		t.Error("backport of an unknown patch succeeded")
	}
}

func TestImageCheckBackup(t *testing.T) {
	host, lf := setup(t)
	out, _, err := runImage(t, "patch", host+"/pods/base:v1", "-f", lf)
	if err != nil {
		t.Fatal(err)
	}
	patched := strings.SplitN(strings.TrimSpace(out), "@", 2)[0]
	tarFile := filepath.Join(t.TempDir(), "upper.tar")
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range []*tar.Header{
		{Name: "home/user/notes", Typeflag: tar.TypeReg},
		{Name: "etc/.wh.motd", Typeflag: tar.TypeReg},
		{Name: "usr/local/bin/pod-start", Typeflag: tar.TypeChar},
	} {
		tw.WriteHeader(h)
	}
	tw.Close()
	os.WriteFile(tarFile, b.Bytes(), 0o644)
	out, _, err = runImage(t, "check-backup", patched, tarFile, "-f", lf)
	if err == nil || !strings.Contains(err.Error(), "2 backup entries would hide patched files") {
		t.Errorf("error = %v", err)
	}
	for _, want := range []string{"etc/.wh.motd", "whiteout deletes the patched file", "usr/local/bin/pod-start  whiteout"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	clean := t.TempDir()
	if _, errOut, err := runImage(t, "check-backup", patched, clean, "-f", lf); err != nil || !strings.Contains(errOut, "nothing in the backup hides") {
		t.Errorf("clean backup: %v %s", err, errOut)
	}
}

func TestImageBuildWithoutHelper(t *testing.T) {
	_, lf := setup(t)
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no helper":     {[]string{"build", "base", "v2", "--builder", "/nonexistent/podwarden-build"}, "needs the podwarden-build helper"},
		"first version": {[]string{"build", "base", "v1"}, "is a family's first version"},
		"no version":    {[]string{"build", "base", "v9"}, `no version "v9"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := runImage(t, append(tc.args, "-f", lf)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("build: %v, want %q", err, tc.want)
			}
		})
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
