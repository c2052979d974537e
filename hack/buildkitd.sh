#!/usr/bin/env bash
# Builds buildkitd from the Go module proxy for the BuildKit end-to-end tests
# (internal/image/buildkit, cmd/podwarden-cluster TestImageBuildEndToEnd), which run
# it as root with Debian's runc.
#
#   hack/buildkitd.sh     # build if missing, print the binary's path
#
# Output: $BUILDKIT_DIR/buildkitd-$BUILDKIT_VERSION (default
# <repo>/.cache/buildkit). About 2 minutes and 1.1 GB of RAM. `go install`
# does not work for buildkitd (its go.mod has exclude directives), so the
# module is downloaded, copied out and built in place.
set -euo pipefail
BUILDKIT_VERSION="${BUILDKIT_VERSION:-v0.34.2}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="${BUILDKIT_DIR:-$repo/.cache/buildkit}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
bin="$out/buildkitd-$BUILDKIT_VERSION"
if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi
work="$(mktemp -d "$out/build.XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work"' EXIT
(cd / && GOFLAGS= go mod download "github.com/moby/buildkit@$BUILDKIT_VERSION") >&2
cp -r "$(go env GOMODCACHE)/github.com/moby/buildkit@$BUILDKIT_VERSION" "$work/src"
chmod -R u+w "$work/src"
(cd "$work/src" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -o "$bin.tmp" ./cmd/buildkitd) >&2
mv "$bin.tmp" "$bin"
echo "$bin"
