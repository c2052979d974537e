package nodetest

// The release as users get it (issue 22): `make release`'s code builds it
// here (internal/release: both platforms, the chart pinned to the index by
// digest), release.Push, the code `make release PUSH=1` runs, pushes it to
// a docker-registry on this host, and Helm's SDK installs the chart from
// oci://RegistryHost/charts/podwarden as `helm install` does. The node's
// containerd pulls the agent image by the chart's digest through qemu's
// forward to that registry; nothing of the agent is imported with ctr.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/cli"
	"helm.sh/helm/v3/pkg/registry"
	corev1 "k8s.io/api/core/v1"

	"podwarden/internal/image/regtest"
	pwrelease "podwarden/internal/release"
)

// releaseVersion is the release the test builds from this tree. A
// pre-release of 0.0.0: it sorts below any real tag, so it can never be
// mistaken for one.
const releaseVersion = "v0.0.0-nodetest"

// chartRef is where the release's chart is, as users type it.
const chartRef = "oci://" + RegistryHost + "/charts/podwarden"

// releaseRegistry is the registry on this host and how this host's
// clients reach it under the guest's name for it.
type releaseRegistry struct {
	reg  *regtest.Registry
	port string
	tr   *http.Transport
}

// startRegistry runs docker-registry (the distribution registry, which
// the image tests use too) with storage under dir.
func startRegistry(ctx context.Context, t *testing.T, dir string) *releaseRegistry {
	t.Helper()
	reg, err := regtest.Start(ctx, dir)
	if err != nil {
		t.Fatalf("release registry: %v", err)
	}
	t.Cleanup(reg.Stop)
	_, port, _ := net.SplitHostPort(reg.Host)
	return &releaseRegistry{reg: reg, port: port, tr: registryTransport(reg.Host)}
}

// registryTransport dials hostAddr for RegistryHost, as qemu's guestfwd
// does for the guest: the host has no route to the guest's network, and
// the release must name the registry as the node does (the chart pins
// RegistryHost/podwarden@digest).
func registryTransport(hostAddr string) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == RegistryHost {
			addr = hostAddr
		}
		return d.DialContext(ctx, network, addr)
	}
	return tr
}

// builtRelease is a release written and pushed.
type builtRelease struct {
	opts   pwrelease.Options
	res    *pwrelease.Result
	pushed *pwrelease.Pushed
}

// buildRelease builds this tree's release into dir/dist as `make release
// VERSION=releaseVersion REGISTRY=RegistryHost` does and pushes it as
// PUSH=1 does. The Go build cache makes a second run cheap; the two
// platforms' first cross-build takes minutes on a busy machine.
func (r *releaseRegistry) buildRelease(ctx context.Context, repo, dir string) (*builtRelease, error) {
	o := pwrelease.Options{Version: releaseVersion, Registry: RegistryHost, Created: time.Unix(0, 0).UTC(), Repo: repo}
	bins, err := pwrelease.Build(ctx, o, filepath.Join(dir, "bin"))
	if err != nil {
		return nil, fmt.Errorf("building release %s: %w", o.Version, err)
	}
	res, err := pwrelease.Package(ctx, o, bins, filepath.Join(dir, "dist"))
	if err != nil {
		return nil, fmt.Errorf("packaging release %s: %w", o.Version, err)
	}
	pushed, err := pwrelease.Push(ctx, o, res, false, remote.WithTransport(r.tr))
	if err != nil {
		return nil, fmt.Errorf("pushing release %s to %s (on %s): %w", o.Version, RegistryHost, r.reg.Host, err)
	}
	return &builtRelease{opts: o, res: res, pushed: pushed}, nil
}

// imageRef is the agent image as the chart pins it and as containerd
// reports the pulled image (repository@index digest).
func (b *builtRelease) imageRef() string {
	return b.res.Image + "@" + b.res.IndexDigest.String()
}

// registryClient is Helm's OCI client as `helm install oci://...
// --plain-http` builds it, with credentials in dir instead of the
// user's Helm config.
func (r *releaseRegistry) registryClient(dir string) (*registry.Client, error) {
	rc, err := registry.NewClient(
		registry.ClientOptHTTPClient(&http.Client{Transport: r.tr}),
		registry.ClientOptPlainHTTP(),
		registry.ClientOptCredentialsFile(filepath.Join(dir, "registry.json")),
		registry.ClientOptWriter(io.Discard),
	)
	if err != nil {
		return nil, fmt.Errorf("helm registry client for %s: %w", RegistryHost, err)
	}
	return rc, nil
}

// helmSettings are `helm`'s settings with every cache and config under dir.
func helmSettings(dir string) *cli.EnvSettings {
	s := cli.New()
	s.RepositoryCache = filepath.Join(dir, "cache")
	s.RepositoryConfig = filepath.Join(dir, "repositories.yaml")
	s.RegistryConfig = filepath.Join(dir, "registry.json")
	return s
}

// locate downloads ref at version as `helm install ref --version v` does
// and loads it.
func (h helmClient) locate(cpo *action.ChartPathOptions) (*chart.Chart, error) {
	cpo.Version, cpo.PlainHTTP = h.version, true
	path, err := cpo.LocateChart(h.chartRef, h.settings)
	if err != nil {
		return nil, fmt.Errorf("pulling chart %s --version %s: %w", h.chartRef, h.version, err)
	}
	ch, err := loader.Load(path)
	if err != nil {
		return nil, fmt.Errorf("loading chart %s: %w", path, err)
	}
	return ch, nil
}

// checkPulledByDigest fails t unless the agent pod runs the release's
// image index by digest, pulled from the registry: the pod spec names
// RegistryHost/podwarden@<index digest> (the chart's pin, no value set),
// the kubelet reports that digest as the running image, and the node holds
// no imported copy of the agent.
func checkPulledByDigest(ctx context.Context, t *testing.T, c *cluster, n *Node, agent *corev1.Pod) {
	t.Helper()
	want := c.rel.imageRef()
	if got := agent.Spec.Containers[0].Image; got != want {
		t.Errorf("agent pod image %q, want the release's pin %q", got, want)
	}
	for _, cs := range agent.Status.ContainerStatuses {
		id := cs.ImageID
		if _, after, ok := strings.Cut(id, "://"); ok {
			id = after
		}
		if id != want {
			t.Errorf("container %s runs image %q (imageID %q), want %q", cs.Name, cs.Image, cs.ImageID, want)
		}
		t.Logf("REPORT scenario 2: container %s image %s imageID %s", cs.Name, cs.Image, cs.ImageID)
	}
	imported, err := n.Sh(ctx, "ls /pw/images")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(imported, "podwarden") {
		t.Errorf("the node imported an agent image at boot (%s): the install must pull it", strings.Join(strings.Fields(imported), " "))
	}
}
