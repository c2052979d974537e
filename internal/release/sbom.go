package release

import (
	"bytes"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdx/v2/common"
)

// sbom builds one SPDX 2.3 document. Go binaries carry their module list
// (debug/buildinfo, what `go version -m` prints): that is the source of
// truth for what was linked, so the SBOM is read from the binaries, not
// from go.mod.
type sbom struct {
	doc  *spdx.Document
	mods map[string]common.ElementID // path@version → package, shared by the binaries of one document
	n    int
}

func newSBOM(name, version string, subject []byte, created time.Time) *sbom {
	sum := sha256.Sum256(subject)
	return &sbom{
		doc: &spdx.Document{
			SPDXVersion:    spdx.Version,
			DataLicense:    spdx.DataLicense,
			SPDXIdentifier: "DOCUMENT",
			DocumentName:   name,
			// Unique per subject and stable across rebuilds: derived from
			// what the document describes, not from a random UUID.
			DocumentNamespace: "https://spdx.org/spdxdocs/" + name + "-" + hex.EncodeToString(sum[:16]),
			CreationInfo: &spdx.CreationInfo{
				Creators: []common.Creator{
					{CreatorType: "Tool", Creator: "podwarden-release-" + version},
					{CreatorType: "Organization", Creator: "podwarden"},
				},
				Created: created.UTC().Format(time.RFC3339),
			},
		},
		mods: map[string]common.ElementID{},
	}
}

var reIDUnsafe = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

func (s *sbom) id(kind, name string) common.ElementID {
	s.n++
	return common.ElementID(fmt.Sprintf("%s-%d-%s", kind, s.n, strings.Trim(reIDUnsafe.ReplaceAllString(name, "-"), "-")))
}

func (s *sbom) relate(a common.ElementID, rel string, b common.ElementID) {
	s.doc.Relationships = append(s.doc.Relationships, &spdx.Relationship{
		RefA: common.MakeDocElementID("", string(a)), RefB: common.MakeDocElementID("", string(b)), Relationship: rel,
	})
}

func (s *sbom) describe(id common.ElementID) {
	s.relate("DOCUMENT", "DESCRIBES", id)
}

// License is podwarden's own license (LICENSE), as an SPDX identifier:
// declared for what the release builds, not for the modules linked in,
// whose licenses the SBOM does not assert.
const License = "Apache-2.0"

func pkg(id common.ElementID, name, version string) *spdx.Package {
	return &spdx.Package{
		PackageSPDXIdentifier:   id,
		PackageName:             name,
		PackageVersion:          version,
		PackageDownloadLocation: "NOASSERTION",
		PackageLicenseConcluded: "NOASSERTION",
		PackageLicenseDeclared:  "NOASSERTION",
		PackageCopyrightText:    "NOASSERTION",
	}
}

func purl(locator string) []*spdx.PackageExternalReference {
	return []*spdx.PackageExternalReference{{Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL, Locator: locator}}
}

func goPURL(path, version string) string {
	segs := strings.Split(path, "/")
	for i := range segs {
		segs[i] = url.PathEscape(segs[i])
	}
	return "pkg:golang/" + strings.Join(segs, "/") + "@" + url.PathEscape(version)
}

// addBinary adds the Go binary bin of the release version (its bytes, file
// name fileName) with its toolchain and every module linked into it; it
// returns the binary's ID.
func (s *sbom) addBinary(fileName, label, version string, bin []byte) (common.ElementID, error) {
	bi, err := buildinfo.Read(bytes.NewReader(bin))
	if err != nil {
		return "", fmt.Errorf("reading the build info of %s: %w", label, err)
	}
	sum := sha256.Sum256(bin)
	id := s.id("Binary", label)
	// Not bi.Main.Version: that is "(devel)" unless built in a checkout
	// at the tag, and the release's version is what the binary reports.
	p := pkg(id, fileName, version)
	p.PackageFileName = fileName
	p.PackageChecksums = []common.Checksum{{Algorithm: common.SHA256, Value: hex.EncodeToString(sum[:])}}
	p.PrimaryPackagePurpose = "APPLICATION"
	p.PackageLicenseDeclared = License
	var settings []string
	for _, kv := range bi.Settings {
		settings = append(settings, kv.Key+"="+kv.Value)
	}
	p.PackageComment = "main module " + bi.Main.Path + " " + bi.Main.Version + ", package " + bi.Path + "; built with " + bi.GoVersion + ": " + strings.Join(settings, " ")
	s.doc.Packages = append(s.doc.Packages, p)

	deps := []*debugModule{{path: "stdlib", version: bi.GoVersion}}
	for _, m := range bi.Deps {
		if m.Replace != nil {
			m = m.Replace
		}
		deps = append(deps, &debugModule{path: m.Path, version: m.Version, sum: m.Sum})
	}
	for _, m := range deps {
		key := m.path + "@" + m.version
		mid, ok := s.mods[key]
		if !ok {
			mid = s.id("Module", m.path)
			mp := pkg(mid, m.path, m.version)
			mp.PrimaryPackagePurpose = "LIBRARY"
			mp.PackageExternalReferences = purl(goPURL(m.path, m.version))
			if m.sum != "" {
				mp.PackageComment = "go.sum " + m.sum
			}
			s.doc.Packages = append(s.doc.Packages, mp)
			s.mods[key] = mid
		}
		// Statically linked: the module's code is in the binary.
		s.relate(id, "DEPENDS_ON", mid)
	}
	return id, nil
}

type debugModule struct{ path, version, sum string }

// addImage adds an OCI image or index by digest, with its repository and
// tag (and platform for one image of an index) in the purl.
func (s *sbom) addImage(name, version, repository string, d v1.Hash, platform *v1.Platform) common.ElementID {
	q := url.Values{"repository_url": {repository}, "tag": {version}}
	label := name
	if platform != nil {
		q.Set("arch", platform.Architecture)
		q.Set("os", platform.OS)
		label += "-" + platform.OS + "-" + platform.Architecture
	}
	id := s.id("Image", label)
	p := pkg(id, label, version)
	p.PackageChecksums = []common.Checksum{{Algorithm: common.SHA256, Value: d.Hex}}
	p.PackageExternalReferences = purl("pkg:oci/" + name + "@" + url.PathEscape(d.String()) + "?" + q.Encode())
	p.PrimaryPackagePurpose = "CONTAINER"
	p.PackageLicenseDeclared = License
	s.doc.Packages = append(s.doc.Packages, p)
	return id
}

func (s *sbom) json() ([]byte, error) {
	var buf bytes.Buffer
	if err := spdxjson.Write(s.doc, &buf, spdxjson.Indent("  ")); err != nil {
		return nil, fmt.Errorf("writing SPDX document %s: %w", s.doc.DocumentName, err)
	}
	return buf.Bytes(), nil
}
