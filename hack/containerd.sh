#!/usr/bin/env bash
# Builds containerd, ctr and containerd-shim-runc-v2 from the Go module
# proxy for the node test (internal/nodetest). Debian 12's containerd (1.6)
# is too old: the test needs containerd 2 (CRI v1, NRI, cgroup v2 unified
# resources).
#
#   hack/containerd.sh     # build what is missing, print the directory
#
# Output: $CONTAINERD_DIR/$CONTAINERD_VERSION/{containerd,ctr,containerd-shim-runc-v2}
# (default <repo>/.cache/containerd). Static (CGO_ENABLED=0, so the guest
# needs no libc for them) without the btrfs, devmapper and zfs snapshotters,
# which need cgo. About 85 s with a warm Go cache. Builds take the cache's
# .build.lock like hack/kube-bins.sh.
set -euo pipefail
CONTAINERD_VERSION="${CONTAINERD_VERSION:-v2.4.2}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
base="${CONTAINERD_DIR:-$repo/.cache/containerd}"
out="$base/$CONTAINERD_VERSION"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
exec 9>"$(cd "$base/.." && pwd)/.build.lock"
flock 9

mod=github.com/containerd/containerd/v2
for c in containerd ctr containerd-shim-runc-v2; do
	if [ -x "$out/$c" ]; then
		echo "containerd: have $out/$c" >&2
		continue
	fi
	echo "containerd: building $c $CONTAINERD_VERSION" >&2
	tmp="$(mktemp -d "$out/build.XXXXXX")"
	# go install of a module at a version: containerd's go.mod has no
	# replace directives, so no module copy is needed.
	(cd / && GOFLAGS= CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath \
		-tags "no_btrfs no_devmapper no_zfs" \
		-ldflags "-s -w -X $mod/version.Version=${CONTAINERD_VERSION#v}" \
		"$mod/cmd/$c@$CONTAINERD_VERSION")
	mv "$tmp/$c" "$out/$c"
	rm -rf "$tmp"
done
echo "$out"
