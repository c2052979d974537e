// Package sign signs what `make release PUSH=1` pushed with a cosign key
// (COSIGN_KEY), in cosign's own format and with cosign's library, and
// checks signatures as `cosign verify --key` does. It is apart from
// internal/release so that the release's other users (internal/nodetest
// pushes releases) do not compile sigstore's two hundred packages; like
// release, only hack/ imports it, never a shipped binary.
package sign

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	cosignremote "github.com/sigstore/cosign/v2/pkg/cosign/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/signature"
	sigpayload "github.com/sigstore/sigstore/pkg/signature/payload"

	"podwarden/internal/release"
)

// Signer signs pushed references the way `cosign sign --key` does, without
// a transparency log: a simple-signing payload naming the digest, its
// signature in the layer's dev.cosignproject.cosign/signature annotation,
// the signature image at REPO:sha256-<hex>.sig. `cosign verify --key
// cosign.pub --insecure-ignore-tlog` accepts it. No Rekor entry is written
// because a release signed with a key is often pushed to a registry no
// public log should hear of (air-gapped clusters); keyless signing in the
// workflow does write one.
type Signer struct {
	sv signature.SignerVerifier
}

// LoadKey reads a private key as `cosign generate-key-pair` writes it
// (PEM "ENCRYPTED SIGSTORE PRIVATE KEY" or the older "ENCRYPTED COSIGN
// PRIVATE KEY", scrypt and secretbox), decrypted with password. KMS URIs
// (awskms://, gcpkms://, ...) and hardware keys are not supported: sign
// dist/pushed.txt's references with cosign for those.
func LoadKey(path string, password []byte) (*Signer, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the cosign key: %w", err)
	}
	// cosign's loader is the one that knows the encrypted format; nil
	// options are cosign's defaults (ED25519ph for ed25519 keys).
	sv, err := cosign.LoadPrivateKey(pem, password, nil)
	if err != nil {
		return nil, fmt.Errorf("loading the cosign key %s (password from COSIGN_PASSWORD): %w", path, err)
	}
	return &Signer{sv: sv}, nil
}

// PublicKey is the key that verifies s's signatures (cosign.pub's).
func (s *Signer) PublicKey() (crypto.PublicKey, error) { return s.sv.PublicKey() }

// Signature is one signature Sign pushed.
type Signature struct {
	Ref    string // what was signed, repository@sha256:...
	Tag    string // where the signatures are, repository:sha256-<hex>.sig
	Digest v1.Hash
}

// String is the signature image as a reference, tag and digest.
func (s Signature) String() string { return s.Tag + "@" + s.Digest.String() }

// Sign signs ref, which must name a digest (a tag could be moved between
// signing and pushing the signature), adds the signature to any the
// registry already holds for it (as cosign does: a keyless signature and
// this one can both be there) and pushes them to the tag cosign looks
// at. It then checks the registry's copy with cosign's verifier, so a
// registry that mangled the signature image fails the release, not a
// user's install.
func (s *Signer) Sign(ctx context.Context, ref string, insecure bool, opts ...remote.Option) (*Signature, error) {
	var nameOpts []name.Option
	if insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	dig, err := name.NewDigest(ref, nameOpts...)
	if err != nil {
		return nil, fmt.Errorf("signing %q: want repository@sha256:<digest>: %w", ref, err)
	}
	ro := ociremote.WithRemoteOptions(append(opts, remote.WithContext(ctx))...)
	se, err := ociremote.SignedEntity(dig, ro)
	if err != nil {
		return nil, fmt.Errorf("fetching %s to sign it: %w", dig, err)
	}
	payload, err := (&sigpayload.Cosign{Image: dig}).MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("signing payload for %s: %w", dig, err)
	}
	raw, err := s.sv.SignMessage(bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("signing %s: %w", dig, err)
	}
	sig, err := static.NewSignature(payload, base64.StdEncoding.EncodeToString(raw))
	if err != nil {
		return nil, fmt.Errorf("signature layer for %s: %w", dig, err)
	}
	// The dupe detector keeps a second run from stacking the same key's
	// signature again.
	signed, err := mutate.AttachSignatureToEntity(se, sig, mutate.WithDupeDetector(cosignremote.NewDupeDetector(s.sv)))
	if err != nil {
		return nil, fmt.Errorf("adding the signature to %s's: %w", dig, err)
	}
	if err := ociremote.WriteSignatures(dig.Repository, signed, ro); err != nil {
		return nil, fmt.Errorf("pushing the signature of %s: %w", dig, err)
	}
	tag, err := ociremote.SignatureTag(dig, ro)
	if err != nil {
		return nil, err
	}
	sigs, err := signed.Signatures()
	if err != nil {
		return nil, err
	}
	sigDigest, err := sigs.Digest()
	if err != nil {
		return nil, err
	}
	if err := Verify(ctx, dig.String(), s.sv, insecure, opts...); err != nil {
		return nil, fmt.Errorf("checking the signature just pushed: %w", err)
	}
	return &Signature{Ref: dig.String(), Tag: tag.String(), Digest: sigDigest}, nil
}

// SignPushed signs the image index and the chart release.Push pushed.
func (s *Signer) SignPushed(ctx context.Context, p *release.Pushed, insecure bool, opts ...remote.Option) ([]Signature, error) {
	var out []Signature
	for _, ref := range []string{p.Image, p.Chart} {
		sig, err := s.Sign(ctx, ref, insecure, opts...)
		if err != nil {
			return nil, err
		}
		out = append(out, *sig)
	}
	return out, nil
}

// Verify checks ref's signatures as `cosign verify --key
// --insecure-ignore-tlog` does: at least one signature at ref's .sig tag
// verifies with v, and its payload names ref's digest. A tag is resolved
// first, so a tag moved to another image fails. The transparency log and
// certificate checks are off: key-signed releases have no Rekor entry or
// certificate (see Signer).
func Verify(ctx context.Context, ref string, v signature.Verifier, insecure bool, opts ...remote.Option) error {
	var nameOpts []name.Option
	if insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nameOpts...)
	if err != nil {
		return fmt.Errorf("verifying %q: %w", ref, err)
	}
	co := &cosign.CheckOpts{
		SigVerifier:        v,
		ClaimVerifier:      cosign.SimpleClaimVerifier,
		IgnoreTlog:         true,
		IgnoreSCT:          true,
		RegistryClientOpts: []ociremote.Option{ociremote.WithRemoteOptions(append(opts, remote.WithContext(ctx))...)},
	}
	if _, _, err := cosign.VerifyImageSignatures(ctx, r, co); err != nil {
		return fmt.Errorf("verifying %s's cosign signature: %w", ref, err)
	}
	return nil
}

// PushedList is dist/pushed.txt: a line per pushed reference, by digest,
// the image index first; a signed one is followed by a space and its
// signature image (Signature.String). The first field of each line is
// what `cosign sign` or `cosign verify` takes.
func PushedList(p *release.Pushed, sigs []Signature) string {
	var b strings.Builder
	for _, ref := range []string{p.Image, p.Chart} {
		b.WriteString(ref)
		for _, s := range sigs {
			if s.Ref == ref {
				b.WriteString(" " + s.String())
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// FromEnv is the signer `make release PUSH=1 COSIGN_KEY=...` asks
// for: the key at $COSIGN_KEY, its password $COSIGN_PASSWORD (cosign's
// names for both). Without COSIGN_KEY it returns nil: nothing is to be
// signed here. COSIGN_PASSWORD unset is an error rather than an empty
// password, because a key's password left out of the environment would
// otherwise read as a wrong password.
func FromEnv(lookup func(string) (string, bool)) (*Signer, error) {
	path, ok := lookup("COSIGN_KEY")
	if !ok || path == "" {
		return nil, nil
	}
	pass, ok := lookup("COSIGN_PASSWORD")
	if !ok {
		return nil, fmt.Errorf("COSIGN_KEY is %s but COSIGN_PASSWORD is not set (set it to the key's password, empty for a key without one)", path)
	}
	return LoadKey(path, []byte(pass))
}
