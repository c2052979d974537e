package release

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	helmregistry "helm.sh/helm/v3/pkg/registry"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"podwarden/internal/kubetest"
)

// TestChartPushInstall follows a user: the release is pushed to a real
// registry (go-containerregistry's, over HTTP on loopback), Helm's own
// registry client pulls the chart as `helm install oci://...` does, and
// `helm template` of the pulled chart runs the image by the digest of the
// index the registry now serves, with both platforms in it.
func TestChartPushInstall(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(discardLogger())))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	o := testOptions()
	o.Registry = host + "/podwarden"
	ctx := context.Background()
	dist := t.TempDir() + "/dist"
	res, err := Package(ctx, o, tinyBinaries(t), dist)
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := Push(ctx, o, res, false)
	if err != nil {
		t.Fatal(err)
	}
	wantImage := host + "/podwarden/podwarden@" + res.IndexDigest.String()
	if pushed.Image != wantImage || !strings.HasPrefix(pushed.Chart, host+"/podwarden/charts/podwarden@sha256:") {
		t.Errorf("pushed %+v, want image %s", pushed, wantImage)
	}

	// The registry serves the index under the release tag with both platforms.
	tag, _ := name.NewTag(host + "/podwarden/podwarden:v0.2.0")
	idx, err := remote.Index(tag, remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := idx.Digest(); d != res.IndexDigest {
		t.Errorf("registry serves index %s, built %s", d, res.IndexDigest)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 2 || im.Manifests[0].Platform.String() != "linux/amd64" || im.Manifests[1].Platform.String() != "linux/arm64" {
		t.Errorf("registry index manifests %+v", im.Manifests)
	}

	client, err := helmregistry.NewClient(helmregistry.ClientOptPlainHTTP(), helmregistry.ClientOptCredentialsFile(t.TempDir()+"/config.json"))
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := client.Pull(host + "/podwarden/charts/podwarden:0.2.0")
	if err != nil {
		t.Fatalf("helm pull: %v", err)
	}
	if !bytes.Equal(pulled.Chart.Data, res.chart.tgz) {
		t.Error("the pulled chart is not the packaged one")
	}
	if pulled.Chart.Meta.Version != "0.2.0" || pulled.Chart.Meta.AppVersion != "v0.2.0" {
		t.Errorf("pulled chart metadata %+v", pulled.Chart.Meta)
	}
	if pulled.Manifest.Digest != strings.SplitN(pushed.Chart, "@", 2)[1] {
		t.Errorf("helm pulled manifest %s, pushed %s", pulled.Manifest.Digest, pushed.Chart)
	}
	ch, err := loader.LoadArchive(bytes.NewReader(pulled.Chart.Data))
	if err != nil {
		t.Fatal(err)
	}
	if img := renderedImage(t, ch); img != wantImage {
		t.Errorf("helm template runs image %q, want %q", img, wantImage)
	}
	// A user's own tag does not undo the pin.
	if img := renderedImage(t, ch, "tag", "latest"); img != wantImage {
		t.Errorf("with image.tag=latest: image %q, want %q", img, wantImage)
	}
}

// renderedImage is the agent container's image in `helm template` of ch,
// with image.<key>=<value> pairs set.
func renderedImage(t *testing.T, ch *chart.Chart, set ...string) string {
	t.Helper()
	image := map[string]any{}
	for i := 0; i+1 < len(set); i += 2 {
		image[set[i]] = set[i+1]
	}
	install := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	install.DryRun, install.ClientOnly, install.Replace = true, true, true
	install.ReleaseName, install.Namespace = "podwarden", "podwarden-system"
	kv, err := chartutil.ParseKubeVersion(kubetest.KubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	install.KubeVersion = kv
	rel, err := install.Run(ch, map[string]any{"image": image})
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	for _, doc := range strings.Split(rel.Manifest, "\n---\n") {
		if !strings.Contains(doc, "kind: DaemonSet") {
			continue
		}
		var ds appsv1.DaemonSet
		if err := yaml.Unmarshal([]byte(doc), &ds); err != nil {
			t.Fatal(err)
		}
		if sel := ds.Spec.Template.Spec.NodeSelector; len(sel) != 1 || sel["kubernetes.io/os"] != "linux" {
			t.Errorf("nodeSelector %v: the index serves every architecture, select the OS only", sel)
		}
		return ds.Spec.Template.Spec.Containers[0].Image
	}
	t.Fatal("no DaemonSet rendered")
	return ""
}

func TestSetImage(t *testing.T) {
	const dig = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	good := "nameOverride: \"\"\nimage:\n  # where\n  repository: ghcr.io/podwarden/podwarden\n\n  tag: \"\"\n  digest: \"\"\nother:\n  repository: keep\n  digest: keep\n"
	got, err := setImage([]byte(good), "r.example/podwarden", dig)
	if err != nil {
		t.Fatal(err)
	}
	want := "nameOverride: \"\"\nimage:\n  # where\n  repository: \"r.example/podwarden\"\n\n  tag: \"\"\n  digest: \"" + dig + "\"\nother:\n  repository: keep\n  digest: keep\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	for name, in := range map[string]string{
		"no digest key":       "image:\n  repository: x\n  tag: \"\"\n",
		"no image block":      "repository: x\ndigest: \"\"\n",
		"digest elsewhere":    "image:\n  repository: x\nother:\n  digest: \"\"\n",
		"nested, not the key": "image:\n  repository: x\n  sub:\n    digest: \"\"\n",
	} {
		if _, err := setImage([]byte(in), "r", dig); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := setChartVersion([]byte("name: podwarden\nversion: 0.1.0\n"), "0.2.0", "v0.2.0"); err == nil {
		t.Error("a Chart.yaml without appVersion was accepted")
	}
	out, err := setChartVersion([]byte("name: podwarden\nversion: 0.1.0\n# appVersion: no\nappVersion: \"v0.1.0\"\n"), "0.2.0", "v0.2.0")
	if err != nil || string(out) != "name: podwarden\nversion: 0.2.0\n# appVersion: no\nappVersion: \"v0.2.0\"\n" {
		t.Errorf("setChartVersion: %q %v", out, err)
	}
}

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }
