package release

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdxlib"
)

// checkSums checks SHA256SUMS the way `sha256sum -c` does and that it
// covers every file of the release.
func checkSums(t *testing.T, dist string) {
	t.Helper()
	f, err := os.Open(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	listed := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", sc.Text())
		}
		data, err := os.ReadFile(filepath.Join(dist, name))
		if err != nil {
			t.Errorf("SHA256SUMS names %s: %v", name, err)
			continue
		}
		if got := sha256.Sum256(data); hex.EncodeToString(got[:]) != sum {
			t.Errorf("%s: sha256 %x, SHA256SUMS says %s", name, got, sum)
		}
		listed[name] = true
	}
	entries, err := os.ReadDir(dist)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() && e.Name() != "SHA256SUMS" && !listed[e.Name()] {
			t.Errorf("%s is not in SHA256SUMS", e.Name())
		}
	}
	if !listed["podwarden-image/index.json"] {
		t.Error("SHA256SUMS does not pin the image index")
	}
}

var wantMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

func elfMachineOf(t *testing.T, data []byte, what string) elf.Machine {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	defer f.Close()
	return f.Machine
}

func untar(t *testing.T, r io.Reader) map[string]*tarFile {
	files, _ := untarOrder(t, r)
	return files
}

// untarOrder is the archive's files and their names in archive order.
func untarOrder(t *testing.T, r io.Reader) (map[string]*tarFile, []string) {
	t.Helper()
	tr := tar.NewReader(r)
	files := map[string]*tarFile{}
	var order []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = &tarFile{h, data}
		order = append(order, h.Name)
	}
	return files, order
}

type tarFile struct {
	h    *tar.Header
	data []byte
}

func checkTarball(t *testing.T, path, arch string, mtime time.Time) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("%s: gzip header has name %q, time %v", path, zr.Name, zr.ModTime)
	}
	files, names := untarOrder(t, zr)
	if !slices.IsSorted(names) {
		t.Errorf("%s: entries not sorted: %q", path, names)
	}
	names = slices.Sorted(slices.Values(names))
	want := []string{"LICENSE", "README.md", "podwarden", "podwarden-agent", "podwarden-cluster"}
	if !slices.Equal(names, want) {
		t.Errorf("%s holds %q, want %q", path, names, want)
	}
	for name, f := range files {
		if !f.h.ModTime.Equal(mtime) || f.h.Uid != 0 || f.h.Uname != "" {
			t.Errorf("%s: %s time %v uid %d %q", path, name, f.h.ModTime, f.h.Uid, f.h.Uname)
		}
		if strings.HasPrefix(name, "podwarden") {
			if f.h.Mode != 0o755 {
				t.Errorf("%s: %s mode %o", path, name, f.h.Mode)
			}
			if m := elfMachineOf(t, f.data, name); m != wantMachine[arch] {
				t.Errorf("%s: %s is %s, want %s", path, name, m, wantMachine[arch])
			}
		}
	}
}

// checkLayout: the OCI layout holds an index of linux/amd64 and
// linux/arm64, each image's /podwarden of its platform's ELF machine.
func checkLayout(t *testing.T, dir string, res *Result) {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Errorf("image layout: %v", err)
	}
	if d, _ := idx.Digest(); d != res.IndexDigest {
		t.Errorf("layout index %s, Package said %s", d, res.IndexDigest)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, d := range im.Manifests {
		platforms = append(platforms, d.Platform.String())
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		layers, _ := img.Layers()
		rc, err := layers[0].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		bin := untar(t, rc)["podwarden"]
		rc.Close()
		if bin == nil {
			t.Fatalf("%s image has no /podwarden", d.Platform)
		}
		if m := elfMachineOf(t, bin.data, d.Platform.String()); m != wantMachine[d.Platform.Architecture] {
			t.Errorf("%s image's /podwarden is %s", d.Platform, m)
		}
	}
	if !slices.Equal(platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("index platforms %q", platforms)
	}
}

// checkSBOMs: every SBOM is valid SPDX 2.3 JSON (read back by the SPDX
// library) and names its subject by the checksum of what was shipped.
func checkSBOMs(t *testing.T, dist string, res *Result) {
	t.Helper()
	err := filepath.WalkDir(dist, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(path, ".spdx.json") {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		doc, err := spdxjson.Read(f)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			return nil
		}
		if err := spdxlib.ValidateDocument(doc); err != nil {
			t.Errorf("%s: %v", path, err)
		}
		if doc.SPDXVersion != "SPDX-2.3" || doc.CreationInfo.Created != "2025-12-06T05:46:40Z" {
			t.Errorf("%s: %s created %s", path, doc.SPDXVersion, doc.CreationInfo.Created)
		}
		described, err := spdxlib.GetDescribedPackageIDs(doc)
		if err != nil || len(described) != 1 {
			t.Fatalf("%s describes %v: %v", path, described, err)
		}
		var stdlib bool
		for _, p := range doc.Packages {
			if p.PackageName == "stdlib" && strings.HasPrefix(p.PackageVersion, "go1.") {
				stdlib = true
			}
			if p.PackageSPDXIdentifier != described[0] {
				continue
			}
			if p.PackageLicenseDeclared != "Apache-2.0" {
				t.Errorf("%s: subject %s declares license %q, want LICENSE's Apache-2.0", path, p.PackageName, p.PackageLicenseDeclared)
			}
			if p.PackageVersion != "v0.2.0" {
				t.Errorf("%s: subject %s version %q, want the release's v0.2.0", path, p.PackageName, p.PackageVersion)
			}
			want := res.IndexDigest.Hex
			if name := filepath.Base(path); name != "podwarden-image.spdx.json" {
				// podwarden_0.2.0_linux_<arch>_<cmd>.spdx.json
				parts := strings.SplitN(strings.TrimSuffix(name, ".spdx.json"), "_", 5)
				want = fileSum(t, dist, parts[3], parts[4])
			}
			if len(p.PackageChecksums) != 1 || p.PackageChecksums[0].Value != want {
				t.Errorf("%s: subject %s checksums %v, want sha256 %s", path, p.PackageName, p.PackageChecksums, want)
			}
		}
		if !stdlib {
			t.Errorf("%s lists no Go standard library", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// fileSum is the sha256 of command cmd in the arch tarball of dist.
func fileSum(t *testing.T, dist, arch, cmd string) string {
	t.Helper()
	f, err := os.Open(filepath.Join(dist, "podwarden_0.2.0_linux_"+arch+".tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tf := untar(t, zr)[cmd]
	if tf == nil {
		t.Fatalf("no %s in the %s tarball", cmd, arch)
	}
	sum := sha256.Sum256(tf.data)
	return hex.EncodeToString(sum[:])
}

// treeSums is every file under dir by relative path, with its sha256.
func treeSums(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		sum := sha256.Sum256(data)
		out[rel] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
