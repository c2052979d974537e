package release

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"podwarden/internal/agentimage"
)

// Commands are the binaries a release ships, each built from ./cmd/<name>.
var Commands = []string{"podwarden", "podwarden-agent", "podwarden-cluster"}

// Options name a release.
type Options struct {
	// Version is the release's tag, vMAJOR.MINOR.PATCH[-PRE][+BUILD]: the
	// image tag and the chart's appVersion; without the v it is the chart
	// version and names the files.
	Version string
	// Registry is where the image and chart are (to be) pushed, e.g.
	// ghcr.io/podwarden: the image is Registry/podwarden, the chart
	// oci://Registry/charts/podwarden. The chart's image.repository is set
	// to it, so it must be where the nodes pull from.
	Registry string
	// Created fixes every file time and the image's created date
	// (SOURCE_DATE_EPOCH, or the commit's time).
	Created time.Time
	// Revision is the git commit, labelled on the image; may be empty.
	Revision string
	// Repo is the module root: README.md, LICENSE, deploy/helm/podwarden.
	Repo string
}

// Binaries are built binaries by GOARCH, then command name, as paths.
type Binaries map[string]map[string]string

// Result is what Package wrote.
type Result struct {
	Files       []string // dist-relative, sorted; the image layout is podwarden-image/
	Index       v1.ImageIndex
	IndexDigest v1.Hash
	Image       string // Registry/podwarden
	ChartRef    string // Registry/charts/podwarden:<chart version>
	chart       *chartPackage
}

// The SemVer 2 grammar (semver.org), with the v a Git tag carries.
var reVersion = regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

func (o Options) check() error {
	if !reVersion.MatchString(o.Version) {
		// A chart version must be SemVer, and `git describe` output is not.
		return fmt.Errorf("release version %q: want vMAJOR.MINOR.PATCH (e.g. v0.2.0), a tag's name", o.Version)
	}
	if o.Registry == "" || strings.Contains(o.Registry, "://") || strings.HasSuffix(o.Registry, "/") {
		return fmt.Errorf("registry %q: want host[:port][/path] without a scheme, e.g. ghcr.io/podwarden", o.Registry)
	}
	return nil
}

// chartVersion is Version without its v.
func (o Options) chartVersion() string { return strings.TrimPrefix(o.Version, "v") }

// Build builds every command for every platform in agentimage.Arches into
// dir/<arch>/<command>, the way agentimage builds the image's binary.
func Build(ctx context.Context, o Options, dir string) (Binaries, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	bins := Binaries{}
	for _, arch := range agentimage.Arches {
		bins[arch] = map[string]string{}
		for _, c := range Commands {
			out := filepath.Join(dir, arch, c)
			if err := agentimage.BuildStatic(ctx, o.Repo, "./cmd/"+c, o.Version, arch, out); err != nil {
				return nil, err
			}
			bins[arch][c] = out
		}
	}
	return bins, nil
}

var elfMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// checkELF refuses a binary that is not a static linux ELF for arch: a
// tarball or image entry for the wrong platform is the exec format error
// the release exists to prevent.
func checkELF(data []byte, arch, label string) error {
	want, ok := elfMachine[arch]
	if !ok {
		return fmt.Errorf("%s: no ELF machine known for GOARCH %s", label, arch)
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%s is not an ELF binary: %w", label, err)
	}
	defer f.Close()
	if f.Machine != want {
		return fmt.Errorf("%s is built for %s, want %s (linux/%s)", label, f.Machine, want, arch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked: build it with CGO_ENABLED=0", label)
		}
	}
	return nil
}

// Package writes the release from bins into dist, which must not exist.
func Package(ctx context.Context, o Options, bins Binaries, dist string) (*Result, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(dist); !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("release directory %s: exists already (remove it first)", dist)
	}
	if err := os.MkdirAll(dist, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dist, err)
	}
	ver := o.chartVersion()
	res := &Result{Image: o.Registry + "/podwarden", ChartRef: o.Registry + "/charts/podwarden:" + strings.ReplaceAll(ver, "+", "_")}
	write := func(name string, data []byte) error {
		if err := os.WriteFile(filepath.Join(dist, name), data, 0o644); err != nil {
			return fmt.Errorf("writing the release: %w", err)
		}
		res.Files = append(res.Files, name)
		return nil
	}

	docs, err := docFiles(o.Repo)
	if err != nil {
		return nil, err
	}
	var imgs []v1.Image
	imgSBOM := newSBOM("podwarden-image_"+ver, o.Version, []byte(o.Registry+"/podwarden:"+o.Version), o.Created)
	var perArch []archImage
	for _, arch := range agentimage.Arches {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		base := fmt.Sprintf("podwarden_%s_linux_%s", ver, arch)
		files := slices.Clone(docs)
		for _, c := range Commands {
			path := bins[arch][c]
			if path == "" {
				return nil, fmt.Errorf("no %s binary for linux/%s", c, arch)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("reading the %s binary: %w", c, err)
			}
			if err := checkELF(data, arch, path); err != nil {
				return nil, err
			}
			files = append(files, entry{name: c, mode: 0o755, data: data})
			sb := newSBOM(base+"_"+c, o.Version, data, o.Created)
			id, err := sb.addBinary(c, c+"-linux-"+arch, o.Version, data)
			if err != nil {
				return nil, err
			}
			sb.describe(id)
			js, err := sb.json()
			if err != nil {
				return nil, err
			}
			if err := write(base+"_"+c+".spdx.json", js); err != nil {
				return nil, err
			}
			if c == "podwarden-agent" {
				img, err := agentimage.Image(path, agentimage.Meta{Version: o.Version, Revision: o.Revision, Created: o.Created, Arch: arch})
				if err != nil {
					return nil, fmt.Errorf("building the linux/%s image: %w", arch, err)
				}
				imgs = append(imgs, img)
				perArch = append(perArch, archImage{arch: arch, img: img, bin: data})
			}
		}
		tgz, err := tarGz(files, o.Created)
		if err != nil {
			return nil, fmt.Errorf("archiving %s: %w", base, err)
		}
		if err := write(base+".tar.gz", tgz); err != nil {
			return nil, err
		}
	}

	idx, err := agentimage.Index(imgs...)
	if err != nil {
		return nil, err
	}
	if err := agentimage.WriteLayout(filepath.Join(dist, "podwarden-image"), idx); err != nil {
		return nil, err
	}
	if res.IndexDigest, err = idx.Digest(); err != nil {
		return nil, fmt.Errorf("digesting the image index: %w", err)
	}
	res.Index = idx
	idxID := imgSBOM.addImage("podwarden", o.Version, res.Image, res.IndexDigest, nil)
	imgSBOM.describe(idxID)
	for _, pa := range perArch {
		d, err := pa.img.Digest()
		if err != nil {
			return nil, fmt.Errorf("digesting the linux/%s image: %w", pa.arch, err)
		}
		imID := imgSBOM.addImage("podwarden", o.Version, res.Image, d, &v1.Platform{OS: "linux", Architecture: pa.arch})
		imgSBOM.relate(idxID, "CONTAINS", imID)
		binID, err := imgSBOM.addBinary("podwarden", "podwarden-agent-linux-"+pa.arch, o.Version, pa.bin)
		if err != nil {
			return nil, err
		}
		imgSBOM.relate(imID, "CONTAINS", binID)
	}
	js, err := imgSBOM.json()
	if err != nil {
		return nil, err
	}
	if err := write("podwarden-image.spdx.json", js); err != nil {
		return nil, err
	}

	ch, err := packageChart(filepath.Join(o.Repo, "deploy/helm/podwarden"), ver, o.Version, res.Image, res.IndexDigest.String(), o.Created)
	if err != nil {
		return nil, err
	}
	res.chart = ch
	if err := write(chartFileName(ch.name, ver), ch.tgz); err != nil {
		return nil, err
	}

	sums, err := sha256sums(dist, append(slices.Clone(res.Files), "podwarden-image/index.json"))
	if err != nil {
		return nil, err
	}
	if err := write("SHA256SUMS", sums); err != nil {
		return nil, err
	}
	res.Files = append(res.Files, "podwarden-image/")
	slices.Sort(res.Files)
	return res, nil
}

// archImage is one platform's image and the agent binary in it.
type archImage struct {
	arch string
	img  v1.Image
	bin  []byte
}

// docFiles are the documents every tarball carries: a binary shipped
// without its license cannot be redistributed, so a missing one fails the
// release.
func docFiles(repo string) ([]entry, error) {
	var out []entry
	for _, name := range []string{"README.md", "LICENSE"} {
		data, err := os.ReadFile(filepath.Join(repo, name))
		if err != nil {
			return nil, fmt.Errorf("reading a release document: %w", err)
		}
		out = append(out, entry{name: name, mode: 0o644, data: data})
	}
	return out, nil
}

// sha256sums is the `sha256sum` format `sha256sum -c` checks, sorted.
func sha256sums(dir string, names []string) ([]byte, error) {
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, fmt.Errorf("summing the release: %w", err)
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(sum[:]), n)
	}
	return []byte(b.String()), nil
}
