#!/usr/bin/env bash
# Builds Kubernetes components and etcd from the Go module proxy (no
# container engine, no GitHub clone).
#
#   hack/kube-bins.sh                  # kube-apiserver and etcd: the tests in
#                                      # deploy/helm, internal/kubeevent,
#                                      # internal/status, cmd/podwarden-cluster
#   hack/kube-bins.sh kubelet kube-controller-manager kube-scheduler
#                                      # the node test (internal/nodetest)
#
# Output: $KUBE_BIN_DIR/<component>-$KUBE_VERSION and
# $KUBE_BIN_DIR/etcd-$ETCD_VERSION (default <repo>/.cache/kube, gitignored).
# Keyed by version: a binary that exists and reports its version is never
# rebuilt. kube-apiserver and etcd take 5-10 minutes on 2 cores (10.5 min
# measured on a busy shared machine); kubelet about 2 minutes,
# kube-controller-manager 1, kube-scheduler under 1 with a warm Go cache.
# Each needs 2-3 GB of RAM, so they are built one at a time.
#
# Builds into a shared cache take $KUBE_BIN_DIR/../.build.lock (flock), so
# two runs never build the same binary at once: the second waits and then
# finds it.
#
# Why the module surgery: k8s.io/kubernetes and etcd's server module point
# their sibling modules at relative paths (./staging/..., ../api) that the
# module zip does not contain, so the replaces are turned into requires of
# the released versions of those modules (FACTS.md, API server section).
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.5}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="${KUBE_BIN_DIR:-$repo/.cache/kube}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

components=("$@")
[ "${#components[@]}" -gt 0 ] || components=(kube-apiserver etcd)

# One lock for every build into the cache's parent (shared with
# hack/containerd.sh and hack/buildkitd.sh).
lock="$(dirname "$out")/.build.lock"
exec 9>"$lock"
flock 9

# The staging modules are released as v0.X.Y for Kubernetes v1.X.Y.
staging_version="v0.${KUBE_VERSION#v1.}"
minor="${KUBE_VERSION#v1.}"
minor="${minor%%.*}"
# Without these the binaries report v0.0.0-master, which Helm's kubeVersion
# check and the node's status (kubeletVersion) would show.
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"

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

# have BIN: the binary exists and reports the wanted version (a binary built
# without the version ldflags reports v0.0.0-master and is rebuilt).
have() {
	[ -x "$1" ] || return 1
	case "$(basename "$1")" in
	etcd-*) return 0 ;;
	esac
	"$1" --version 2>/dev/null | grep -q "Kubernetes $KUBE_VERSION\$"
}

# The k8s.io/kubernetes module copy, prepared once per run for every
# component that needs it.
kube_src() {
	if [ ! -d "$work/src-kubernetes" ]; then
		module_copy "k8s.io/kubernetes@$KUBE_VERSION" "$work/src-kubernetes"
		(
			cd "$work/src-kubernetes"
			rm -f go.work go.work.sum
			replaces | while read -r old new; do
				case "$new" in
				./staging/*) go mod edit -dropreplace="$old" -require="$old@$staging_version" ;;
				esac
			done
		)
	fi
	echo "$work/src-kubernetes"
}

build_etcd() {
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
	mv "$work/etcd" "$out/etcd-$ETCD_VERSION"
}

for c in "${components[@]}"; do
	case "$c" in
	etcd)
		bin="$out/etcd-$ETCD_VERSION"
		if have "$bin"; then echo "kube-bins: have $bin" >&2; continue; fi
		echo "kube-bins: building etcd $ETCD_VERSION" >&2
		build_etcd
		;;
	kube-apiserver | kubelet | kube-controller-manager | kube-scheduler)
		bin="$out/$c-$KUBE_VERSION"
		if have "$bin"; then echo "kube-bins: have $bin" >&2; continue; fi
		echo "kube-bins: building $c $KUBE_VERSION" >&2
		src="$(kube_src)"
		(cd "$src" && go build -trimpath -ldflags "$ldflags" -o "$work/$c" "./cmd/$c")
		mv "$work/$c" "$bin"
		;;
	*)
		echo "kube-bins: unknown component $c (want kube-apiserver, etcd, kubelet, kube-controller-manager, kube-scheduler)" >&2
		exit 2
		;;
	esac
done

echo "$out"
