package sign

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	"podwarden/internal/agentimage"
	"podwarden/internal/release"
)

// The release's binaries are a tiny program, built once for each
// platform with the release's recipe and shipped under every command's
// name (as internal/release's tests do): signing does not care what the
// binaries are, and cross-compiling the real ones takes minutes.
func tinyBinaries(t *testing.T) release.Binaries {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bins := release.Binaries{}
	for _, arch := range agentimage.Arches {
		out := filepath.Join(dir, arch)
		if err := agentimage.BuildStatic(ctx, repoRoot, "./internal/release/testdata/tiny", "v0.2.0", arch, out); err != nil {
			t.Fatal(err)
		}
		bins[arch] = map[string]string{}
		for _, c := range release.Commands {
			bins[arch][c] = out
		}
	}
	return bins
}

const repoRoot = "../../.."

// pushedRelease is a release (internal/release's Package and Push, what
// `make release PUSH=1` runs) pushed to its own in-process registry
// (go-containerregistry's, plain HTTP on loopback).
type pushedRelease struct {
	host   string
	pushed *release.Pushed
}

func pushRelease(t *testing.T, bins release.Binaries) pushedRelease {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	o := release.Options{Version: "v0.2.0", Registry: host + "/podwarden", Created: time.Unix(1765000000, 0), Revision: "0123abc", Repo: repoRoot}
	ctx := context.Background()
	res, err := release.Package(ctx, o, bins, filepath.Join(t.TempDir(), "dist"))
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := release.Push(ctx, o, res, false)
	if err != nil {
		t.Fatal(err)
	}
	return pushedRelease{host: host, pushed: pushed}
}

func (r pushedRelease) imageTag() string { return r.host + "/podwarden/podwarden:v0.2.0" }
func (r pushedRelease) chartTag() string { return r.host + "/podwarden/charts/podwarden:0.2.0" }

// cosignKey is a key pair as `cosign generate-key-pair` writes it (the
// CLI's own code, cosign.GenerateKeyPair), in files.
type cosignKey struct {
	priv, pub, password string
}

func newCosignKey(t *testing.T, password string) cosignKey {
	t.Helper()
	kb, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return []byte(password), nil })
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	k := cosignKey{priv: filepath.Join(dir, "cosign.key"), pub: filepath.Join(dir, "cosign.pub"), password: password}
	if err := os.WriteFile(k.priv, kb.PrivateBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.pub, kb.PublicBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	return k
}

func (k cosignKey) env() func(string) (string, bool) {
	return envOf(map[string]string{"COSIGN_KEY": k.priv, "COSIGN_PASSWORD": k.password})
}

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func (k cosignKey) signer(t *testing.T) *Signer {
	t.Helper()
	s, err := FromEnv(k.env())
	if err != nil || s == nil {
		t.Fatalf("signer from %s: %v %v", k.priv, s, err)
	}
	return s
}

// verifier is cosign.pub as `cosign verify --key cosign.pub` loads it.
func (k cosignKey) verifier(t *testing.T) signature.Verifier {
	t.Helper()
	pem, err := os.ReadFile(k.pub)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// cosignVerify is cosign's own verification of ref against key, what
// `cosign verify --key cosign.pub --insecure-ignore-tlog` runs: the
// transparency log and certificate (SCT) checks are off because there is
// no Rekor here and a key-signed release writes none (Signer). It
// returns the number of signatures that verified.
func cosignVerify(t *testing.T, ref string, k cosignKey) (int, error) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	sigs, _, err := cosign.VerifyImageSignatures(context.Background(), r, &cosign.CheckOpts{
		SigVerifier:   k.verifier(t),
		ClaimVerifier: cosign.SimpleClaimVerifier,
		IgnoreTlog:    true,
		IgnoreSCT:     true,
	})
	return len(sigs), err
}

// TestSignVerify signs a pushed release with a fresh key, as `make release
// PUSH=1 COSIGN_KEY=...` does, and checks it as a user would: cosign's
// verification passes for the image index and the chart, by digest and by
// the release tags; the signature image is at the tag cosign looks at,
// in cosign's simple-signing form, naming the signed digest; pushed.txt
// lists it. Signing again adds nothing; a second key adds its own.
func TestSignVerify(t *testing.T) {
	r := pushRelease(t, tinyBinaries(t))
	ctx := context.Background()
	key := newCosignKey(t, "correct horse")
	sigs, err := key.signer(t).SignPushed(ctx, r.pushed, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(sigs) != 2 || sigs[0].Ref != r.pushed.Image || sigs[1].Ref != r.pushed.Chart {
		t.Fatalf("signed %+v, pushed %+v", sigs, r.pushed)
	}
	for i, ref := range []string{r.pushed.Image, r.pushed.Chart} {
		repo, digest, _ := strings.Cut(ref, "@")
		wantTag := repo + ":" + strings.Replace(digest, ":", "-", 1) + ".sig"
		if sigs[i].Tag != wantTag {
			t.Errorf("signature of %s at %s, cosign looks at %s", ref, sigs[i].Tag, wantTag)
		}
		checkSignatureImage(t, wantTag, repo, digest)
	}
	want := r.pushed.Image + " " + sigs[0].String() + "\n" + r.pushed.Chart + " " + sigs[1].String() + "\n"
	if got := PushedList(r.pushed, sigs); got != want {
		t.Errorf("pushed.txt:\n%s\nwant:\n%s", got, want)
	}
	if got, want := PushedList(r.pushed, nil), r.pushed.Image+"\n"+r.pushed.Chart+"\n"; got != want {
		t.Errorf("pushed.txt unsigned:\n%s\nwant:\n%s", got, want)
	}
	for _, ref := range []string{r.pushed.Image, r.pushed.Chart, r.imageTag(), r.chartTag()} {
		if n, err := cosignVerify(t, ref, key); err != nil || n != 1 {
			t.Errorf("cosign verify %s: %d signatures, %v", ref, n, err)
		}
	}
	cosignCLIVerify(t, key, r.pushed.Image, r.pushed.Chart)

	// A second run (a retried release) finds its signature there already.
	if _, err := key.signer(t).SignPushed(ctx, r.pushed, false); err != nil {
		t.Fatal(err)
	}
	// Another key's signature goes next to the first, as a keyless one
	// from the workflow would: both verify.
	other := newCosignKey(t, "")
	if _, err := other.signer(t).SignPushed(ctx, r.pushed, false); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{r.pushed.Image, r.pushed.Chart} {
		for _, k := range []cosignKey{key, other} {
			if n, err := cosignVerify(t, ref, k); err != nil || n != 1 {
				t.Errorf("after re-signing and a second key: cosign verify %s with %s: %d signatures, %v", ref, k.pub, n, err)
			}
		}
	}
}

// checkSignatureImage reads the signature image at tag without cosign's
// code: one layer of cosign's simple-signing type, its signature in the
// annotation, its payload naming repo and digest.
func checkSignatureImage(t *testing.T, tag, repo, digest string) {
	t.Helper()
	ref, err := name.NewTag(tag)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("no signature image at %s: %v", tag, err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != "application/vnd.dev.cosign.simplesigning.v1+json" || m.Layers[0].Annotations["dev.cosignproject.cosign/signature"] == "" {
		t.Fatalf("signature image %s layers %+v", tag, m.Layers)
	}
	layers, _ := img.Layers()
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var p struct {
		Critical struct {
			Identity struct {
				DockerReference string `json:"docker-reference"`
			}
			Image struct {
				DockerManifestDigest string `json:"docker-manifest-digest"`
			}
			Type string
		}
	}
	if err := json.NewDecoder(rc).Decode(&p); err != nil {
		t.Fatalf("signature payload at %s: %v", tag, err)
	}
	c := p.Critical
	if c.Type != "cosign container image signature" || c.Identity.DockerReference != repo || c.Image.DockerManifestDigest != digest {
		t.Errorf("signature payload at %s: %+v, want %s@%s", tag, c, repo, digest)
	}
}

// cosignCLIVerify runs the real `cosign verify` when one is on PATH (the
// library check above stands in otherwise: building cosign's CLI takes
// minutes and pulls every cloud's KMS SDK).
func cosignCLIVerify(t *testing.T, k cosignKey, refs ...string) {
	t.Helper()
	bin, err := exec.LookPath("cosign")
	if err != nil {
		t.Log("no cosign on PATH: the CLI check is skipped, cosign's library verified")
		return
	}
	for _, ref := range refs {
		cmd := exec.Command(bin, "verify", "--key", k.pub, "--insecure-ignore-tlog", "--allow-insecure-registry", "--allow-http-registry", ref)
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir(), "TUF_ROOT="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v\n%s", cmd, err, out)
		}
	}
}

// TestVerifyTampered: what an attacker with push access to the registry
// but not the key can do must fail cosign's verification.
func TestVerifyTampered(t *testing.T) {
	bins := tinyBinaries(t)
	ctx := context.Background()
	key, attacker := newCosignKey(t, "pw"), newCosignKey(t, "pw")
	type check struct {
		ref func(r pushedRelease) string
		ok  bool
	}
	var (
		image    = func(r pushedRelease) string { return r.pushed.Image }
		chart    = func(r pushedRelease) string { return r.pushed.Chart }
		imageTag = pushedRelease.imageTag
		chartTag = pushedRelease.chartTag
	)
	for _, tc := range []struct {
		name     string
		before   func(t *testing.T, r pushedRelease) // before signing
		signedBy cosignKey
		tamper   func(t *testing.T, r pushedRelease)
		checks   []check
	}{
		{
			// Whoever can push can put anything at the tag the signatures
			// go to; signing adds to what is there, so junk must neither
			// stop the release nor hide its signature.
			name: "junk at the signature tag before signing",
			before: func(t *testing.T, r pushedRelease) {
				repo, digest, _ := strings.Cut(r.pushed.Image, "@")
				junk, _ := random.Image(512, 2)
				ref, _ := name.NewTag(repo + ":" + strings.Replace(digest, ":", "-", 1) + ".sig")
				if err := remote.Write(ref, junk); err != nil {
					t.Fatal(err)
				}
			},
			signedBy: key,
			checks:   []check{{image, true}, {imageTag, true}, {chart, true}},
		},
		{
			name:     "signed with another key",
			signedBy: attacker,
			checks:   []check{{image, false}, {chart, false}, {imageTag, false}, {chartTag, false}},
		},
		{
			// The release tag now names another image: verifying the tag
			// fails, the digest a user pinned still verifies.
			name:     "image tag re-pushed",
			signedBy: key,
			tamper:   func(t *testing.T, r pushedRelease) { repushIndex(t, r.imageTag()) },
			checks:   []check{{imageTag, false}, {image, true}, {chartTag, true}},
		},
		{
			name:     "chart tag re-pushed",
			signedBy: key,
			tamper: func(t *testing.T, r pushedRelease) {
				img, _ := random.Image(64, 1)
				ref, _ := name.NewTag(r.chartTag())
				if err := remote.Write(ref, img); err != nil {
					t.Fatal(err)
				}
			},
			checks: []check{{chartTag, false}, {chart, true}},
		},
		{
			// The release's signature copied to the new image's .sig tag:
			// the signature is good but its payload names the old digest.
			name:     "signature copied to a re-pushed image",
			signedBy: key,
			tamper: func(t *testing.T, r pushedRelease) {
				d := repushIndex(t, r.imageTag())
				repo, digest, _ := strings.Cut(r.pushed.Image, "@")
				from, _ := name.NewTag(repo + ":" + strings.Replace(digest, ":", "-", 1) + ".sig")
				to, _ := name.NewTag(repo + ":" + strings.Replace(d, ":", "-", 1) + ".sig")
				sig, err := remote.Image(from)
				if err != nil {
					t.Fatal(err)
				}
				if err := remote.Write(to, sig); err != nil {
					t.Fatal(err)
				}
			},
			checks: []check{{imageTag, false}, {image, true}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := pushRelease(t, bins)
			if tc.before != nil {
				tc.before(t, r)
			}
			if _, err := tc.signedBy.signer(t).SignPushed(ctx, r.pushed, false); err != nil {
				t.Fatal(err)
			}
			if tc.tamper != nil {
				tc.tamper(t, r)
			}
			for _, c := range tc.checks {
				ref := c.ref(r)
				_, err := cosignVerify(t, ref, key)
				if (err == nil) != c.ok {
					t.Errorf("cosign verify %s: %v, want ok %v", ref, err, c.ok)
				}
				if err := Verify(ctx, ref, key.verifier(t), false); (err == nil) != c.ok {
					t.Errorf("VerifyCosign %s: %v, want ok %v", ref, err, c.ok)
				}
			}
		})
	}
}

// repushIndex pushes another multi-platform index to tag and returns its
// digest.
func repushIndex(t *testing.T, tag string) string {
	t.Helper()
	idx, err := random.Index(64, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.NewTag(tag)
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	d, _ := idx.Digest()
	return d.String()
}

// TestSignerFromEnv: the environment `make release PUSH=1` reads, and
// each way it can be wrong, named in the error.
func TestFromEnv(t *testing.T) {
	key := newCosignKey(t, "s3cret")
	for _, tc := range []struct {
		name    string
		env     map[string]string
		none    bool   // no signer, no error: nothing to sign
		wantErr string // in the error
	}{
		{name: "no key", env: map[string]string{"COSIGN_PASSWORD": "x"}, none: true},
		{name: "empty key", env: map[string]string{"COSIGN_KEY": ""}, none: true},
		{name: "password unset", env: map[string]string{"COSIGN_KEY": key.priv}, wantErr: "COSIGN_PASSWORD is not set"},
		{name: "wrong password", env: map[string]string{"COSIGN_KEY": key.priv, "COSIGN_PASSWORD": "guess"}, wantErr: key.priv},
		{name: "missing file", env: map[string]string{"COSIGN_KEY": key.priv + ".gone", "COSIGN_PASSWORD": "s3cret"}, wantErr: key.priv + ".gone"},
		{name: "public key given", env: map[string]string{"COSIGN_KEY": key.pub, "COSIGN_PASSWORD": "s3cret"}, wantErr: "unsupported pem type"},
		{name: "right", env: map[string]string{"COSIGN_KEY": key.priv, "COSIGN_PASSWORD": "s3cret"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := FromEnv(envOf(tc.env))
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one naming %q", err, tc.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case tc.none != (s == nil):
				t.Fatalf("signer %v, want none %v", s, tc.none)
			case s != nil:
				pub, _ := s.PublicKey()
				want, _ := key.verifier(t).PublicKey()
				if err := cryptoutils.EqualKeys(pub, want); err != nil {
					t.Errorf("the signer's key is not cosign.pub's: %v", err)
				}
			}
		})
	}
}

// TestSignRefusesTag: a tag can move between signing and pushing the
// signature, so only digests are signed.
func TestSignRefusesTag(t *testing.T) {
	s := newCosignKey(t, "").signer(t)
	_, err := s.Sign(context.Background(), "127.0.0.1:1/podwarden/podwarden:v0.2.0", false)
	if err == nil || !strings.Contains(err.Error(), "repository@sha256") {
		t.Fatalf("signing a tag: %v", err)
	}
	var nerr *name.ErrBadName
	if !errors.As(err, &nerr) {
		t.Errorf("error %v does not wrap the reference's", err)
	}
}
