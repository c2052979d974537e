package release

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The media types `helm push` gives a chart (Helm's pkg/registry: a chart
// is an OCI artifact with Chart.yaml as JSON for config and the .tgz as
// its one layer).
const (
	helmConfigMediaType = types.MediaType("application/vnd.cncf.helm.config.v1+json")
	helmChartMediaType  = types.MediaType("application/vnd.cncf.helm.chart.content.v1.tar+gzip")
)

// Pushed are the references Push wrote, by digest: what a release signs
// (cosign sign REF@DIGEST) and what installs pull.
type Pushed struct {
	Image, Chart string // repository@sha256:...
}

// Push pushes the image index as res.Image:<Version> and the chart as
// res.ChartRef. opts carry the registry's credentials (e.g.
// remote.WithAuthFromKeychain(authn.DefaultKeychain)); insecure allows
// plain HTTP to a registry that is not on loopback or a private network
// (those get plain HTTP anyway).
func Push(ctx context.Context, o Options, res *Result, insecure bool, opts ...remote.Option) (*Pushed, error) {
	var nameOpts []name.Option
	if insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	opts = append(opts, remote.WithContext(ctx))
	imgRef, err := name.NewTag(res.Image+":"+o.Version, nameOpts...)
	if err != nil {
		return nil, fmt.Errorf("image reference %s:%s: %w", res.Image, o.Version, err)
	}
	if err := remote.WriteIndex(imgRef, res.Index, opts...); err != nil {
		return nil, fmt.Errorf("pushing the image index to %s: %w", imgRef, err)
	}
	chartRef, err := name.NewTag(res.ChartRef, nameOpts...)
	if err != nil {
		return nil, fmt.Errorf("chart reference %s: %w", res.ChartRef, err)
	}
	art, err := chartArtifact(res.chart, o.Created)
	if err != nil {
		return nil, err
	}
	if err := remote.Write(chartRef, art, opts...); err != nil {
		return nil, fmt.Errorf("pushing the chart to %s: %w", chartRef, err)
	}
	chartDigest, err := art.Digest()
	if err != nil {
		return nil, err
	}
	return &Pushed{
		Image: imgRef.Context().Digest(res.IndexDigest.String()).String(),
		Chart: chartRef.Context().Digest(chartDigest.String()).String(),
	}, nil
}

// chartArtifact is the chart as the OCI artifact `helm push` writes, with
// the annotations Helm sets (created fixed for reproducibility).
func chartArtifact(ch *chartPackage, created time.Time) (v1.Image, error) {
	if ch == nil {
		return nil, fmt.Errorf("no chart was packaged")
	}
	cfgDesc, err := partial.Descriptor(rawBlob{ch.config, helmConfigMediaType})
	if err != nil {
		return nil, err
	}
	layer := rawBlob{ch.tgz, helmChartMediaType}
	layerDesc, err := partial.Descriptor(layer)
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        *cfgDesc,
		Layers:        []v1.Descriptor{*layerDesc},
		Annotations: map[string]string{
			"org.opencontainers.image.title":       ch.name,
			"org.opencontainers.image.version":     ch.version,
			"org.opencontainers.image.description": ch.description,
			"org.opencontainers.image.created":     created.UTC().Format(time.RFC3339),
		},
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding the chart manifest: %w", err)
	}
	return partial.CompressedToImage(artifact{manifest: raw, config: ch.config, layer: layer})
}

var (
	_ partial.CompressedImageCore = artifact{}
	_ partial.CompressedLayer     = rawBlob{}
)

type artifact struct {
	manifest, config []byte
	layer            rawBlob
}

func (a artifact) RawConfigFile() ([]byte, error)      { return a.config, nil }
func (a artifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a artifact) RawManifest() ([]byte, error)        { return a.manifest, nil }
func (a artifact) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if d, _ := a.layer.Digest(); d == h {
		return a.layer, nil
	}
	return nil, fmt.Errorf("chart artifact has no blob %s", h)
}

// rawBlob is a blob pushed as is (no compression of ours).
type rawBlob struct {
	data []byte
	mt   types.MediaType
}

func (b rawBlob) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(b.data))
	return h, err
}
func (b rawBlob) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(b.data)), nil
}
func (b rawBlob) Size() (int64, error)                { return int64(len(b.data)), nil }
func (b rawBlob) MediaType() (types.MediaType, error) { return b.mt, nil }
