package helm_test

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	"podwarden/internal/kubetest"
)

// TestChartImageDigest: a release's chart pins the image by digest
// (image.digest), which wins over the tag; installs that set only
// repository and tag render as before; a digest that is not
// sha256:<64 hex> fails at install with the key named, before a node
// would be told to pull it.
func TestChartImageDigest(t *testing.T) {
	const dig = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for name, tc := range map[string]struct {
		image map[string]any
		want  string
	}{
		"tag":              {map[string]any{"repository": "registry.example.com/podwarden", "tag": "v0.2.0"}, "registry.example.com/podwarden:v0.2.0"},
		"digest":           {map[string]any{"repository": "registry.example.com/podwarden", "digest": dig}, "registry.example.com/podwarden@" + dig},
		"digest wins":      {map[string]any{"repository": "registry.example.com/podwarden", "tag": "v0.2.0", "digest": dig}, "registry.example.com/podwarden@" + dig},
		"empty digest":     {map[string]any{"repository": "registry.example.com/podwarden", "tag": "v0.2.0", "digest": ""}, "registry.example.com/podwarden:v0.2.0"},
		"registry on port": {map[string]any{"repository": "10.0.2.2:5000/podwarden", "digest": dig}, "10.0.2.2:5000/podwarden@" + dig},
	} {
		t.Run(name, func(t *testing.T) {
			ds := find[*appsv1.DaemonSet](decodeAll(t, render(t, map[string]any{"image": tc.image})))
			if len(ds) != 1 {
				t.Fatalf("%d DaemonSets", len(ds))
			}
			if got := ds[0].Spec.Template.Spec.Containers[0].Image; got != tc.want {
				t.Errorf("image %q, want %q", got, tc.want)
			}
			// The index holds every platform: the runtime picks, so the
			// chart selects nodes by OS only.
			if sel := ds[0].Spec.Template.Spec.NodeSelector; len(sel) != 1 || sel["kubernetes.io/os"] != "linux" {
				t.Errorf("nodeSelector %v, want kubernetes.io/os: linux alone", sel)
			}
		})
	}
	for _, bad := range []string{
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"sha256:0123",
		"sha512:" + strings.Repeat("ab", 64),
		"sha256:" + strings.Repeat("AB", 32),
		dig + "\n",
	} {
		_, err := renderFor(kubetest.KubeVersion, map[string]any{"image": map[string]any{"repository": "x", "digest": bad}})
		if err == nil || !strings.Contains(err.Error(), "digest") {
			t.Errorf("digest %q: err %v, want a schema error naming digest", bad, err)
		}
	}
}
