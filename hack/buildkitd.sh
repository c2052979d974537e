#!/bin/sh
# Builds buildkitd v0.34.2 into bench/image/.cache/buildkit-src (gitignored),
# for the BuildKit tests (internal/image/buildkit, cmd/podwarden
# TestImageBuildEndToEnd). About 2 min, 1.1 GB RAM. Running it needs root
# and runc (apt-get install runc).
set -ex
out="$(cd "$(dirname "$0")" && pwd)/.cache/buildkit-src"
mkdir -p "$out" && cd "$out"
(cd / && GOFLAGS= go mod download github.com/moby/buildkit@v0.34.2)  # outside any module
rm -rf src && cp -r "$(go env GOMODCACHE)/github.com/moby/buildkit@v0.34.2" src && chmod -R u+w src
cd src && GOFLAGS=-mod=mod go build -o ../buildkitd ./cmd/buildkitd
