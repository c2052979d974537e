#!/usr/bin/env bash
# Builds kube-apiserver and etcd from the Go module proxy (no container
# engine, no GitHub clone) for the tests in deploy/helm, internal/kubeevent, internal/status and
# cmd/podwarden-cluster/status_test.go, which start a real API server on loopback.
#
#   hack/kube-bins.sh          # build what is missing, print the directory
#
# Output: $KUBE_BIN_DIR/kube-apiserver-$KUBE_VERSION and
# $KUBE_BIN_DIR/etcd-$ETCD_VERSION (default <repo>/.cache/kube, gitignored).
# Keyed by version, so bumping a version rebuilds and an existing binary is
# never rebuilt. 5-10 minutes on 2 cores (10.5 min measured on a busy
# shared machine).
#
# Why the module surgery: k8s.io/kubernetes and etcd's server module point
# their sibling modules at relative paths (./staging/..., ../api) that the
# module zip does not contain, so the replaces are turned into requires of
# the released versions of those modules (FACTS.md, last section).
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.5}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="${KUBE_BIN_DIR:-$repo/.cache/kube}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

apiserver="$out/kube-apiserver-$KUBE_VERSION"
etcd="$out/etcd-$ETCD_VERSION"

# The staging modules are released as v0.X.Y for Kubernetes v1.X.Y.
staging_version="v0.${KUBE_VERSION#v1.}"

work="$(mktemp -d "$out/build.XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work"' EXIT

# Prints "old new" for every replace directive of the go.mod in the
# current directory.
replaces() {
	go mod edit -print | awk '
		/^replace \(/ { inblock = 1; next }
		inblock && /^\)/ { inblock = 0; next }
		/=>/ {
			line = $0
			sub(/^replace[ \t]+/, "", line)
			if (!inblock && $1 != "replace") next
			split(line, parts, /[ \t]*=>[ \t]*/)
			split(parts[1], o, /[ \t]+/)
			split(parts[2], n, /[ \t]+/)
			old = o[1]; if (old == "") old = o[2]
			new = n[1]
			print old, new
		}'
}

# Copies a module out of the module cache into a writable directory.
module_copy() { # module@version dest
	(cd / && GOFLAGS= GO111MODULE=on go mod download "$1")
	cp -r "$(GOFLAGS= go env GOMODCACHE)/$1" "$2"
	chmod -R u+w "$2"
}

export GOFLAGS=-mod=mod CGO_ENABLED=0

if [ -x "$apiserver" ]; then
	echo "kube-bins: have $apiserver" >&2
else
	echo "kube-bins: building kube-apiserver $KUBE_VERSION" >&2
	module_copy "k8s.io/kubernetes@$KUBE_VERSION" "$work/src-kubernetes"
	(
		cd "$work/src-kubernetes"
		rm -f go.work go.work.sum
		replaces | while read -r old new; do
			case "$new" in
			./staging/*) go mod edit -dropreplace="$old" -require="$old@$staging_version" ;;
			esac
		done
		go build -trimpath -o "$work/kube-apiserver" ./cmd/kube-apiserver
	)
	mv "$work/kube-apiserver" "$apiserver"
fi

if [ -x "$etcd" ]; then
	echo "kube-bins: have $etcd" >&2
else
	echo "kube-bins: building etcd $ETCD_VERSION" >&2
	module_copy "go.etcd.io/etcd/server/v3@$ETCD_VERSION" "$work/src-etcd"
	(
		cd "$work/src-etcd"
		rm -f go.work go.work.sum
		replaces | while read -r old new; do
			case "$new" in
			../*) go mod edit -dropreplace="$old" -require="$old@$ETCD_VERSION" ;;
			*FORBIDDEN_DEPENDENCY*) go mod edit -dropreplace="$old" ;;
			esac
		done
		go build -trimpath -o "$work/etcd" .
	)
	mv "$work/etcd" "$etcd"
fi

echo "$out"
