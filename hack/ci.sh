#!/usr/bin/env bash
# `make ci`: the whole suite, ordered so that a first run on a fresh machine
# does not wait for its builds. The tools built from source (kube-apiserver,
# etcd, buildkitd, kubelet, kube-controller-manager, kube-scheduler,
# containerd: most of a cold run) build in the background while lint and
# every test that needs none of them run; the tests that need them run once
# they are there, then the node test. With the cache filled (later runs)
# the background step finds everything and ends at once.
#
# The split is checked, not assumed: the first phase runs with the cache
# directories hidden, so a package listed there that needs a built tool
# fails (kubetest.Start fails without kube-apiserver) instead of quietly
# skipping, and the second phase runs every package that links kubetest or
# starts buildkitd.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
MAKE=${MAKE:-make}
CACHE=${CACHE:-/var/cache/podwarden}
log=$(mktemp /tmp/podwarden-ci-builds.XXXXXX.log)

# apt packages and the guests' kernels: the tests of both phases need them.
./hack/install-deps.sh

stamp() { echo "ci: $(date -u +%H:%M:%S) $*"; }
stamp "building the cached tools in the background (log: $log)"
(
	KUBE_BIN_DIR=$CACHE/kube ./hack/kube-bins.sh kube-apiserver etcd
	BUILDKIT_DIR=$CACHE/buildkit ./hack/buildkitd.sh
	KUBE_BIN_DIR=$CACHE/kube ./hack/kube-bins.sh kubelet kube-controller-manager kube-scheduler
	CONTAINERD_DIR=$CACHE/containerd ./hack/containerd.sh
) >"$log" 2>&1 &
builds=$!
# A failed step below must not leave the builds running into the next run.
trap 'kill $builds 2>/dev/null || true' EXIT

# Packages whose tests start kube-apiserver (they link internal/kubetest)
# or buildkitd, and the node test: phase two.
later=(podwarden/cmd/podwarden-agent podwarden/cmd/podwarden-cluster podwarden/deploy/helm
	podwarden/internal/kubeevent podwarden/internal/kubetest podwarden/internal/release
	podwarden/internal/image podwarden/internal/nodetest)
mapfile -t all < <($GO list ./...)
first=()
for p in "${all[@]}"; do
	[[ " ${later[*]} " == *" $p "* ]] || first+=("$p")
done
# Every package that links kubetest (its tests, or its external _test
# package) must be in phase two: one go list for all of them.
mapfile -t kube < <($GO list -test -f '{{.ImportPath}} {{join .Deps " "}}' ./... |
	awk '$1 ~ /\.test$/ { next } / podwarden\/internal\/kubetest( |$)/ || $1 == "podwarden/internal/kubetest" { sub(/_test$/, "", $1); print $1 }' | sort -u)
for p in "${kube[@]}"; do
	if [[ " ${later[*]} " != *" $p "* ]]; then
		echo "ci: $p starts kube-apiserver (links internal/kubetest) but is not in hack/ci.sh's second phase" >&2
		exit 1
	fi
done

stamp "lint"
$MAKE lint
stamp "phase one: ${#first[@]} packages that need no built tool"
# Nowhere to find the built tools: a test that needs one fails here.
PODWARDEN_KUBE_BIN_DIR=/nonexistent PODWARDEN_BUILDKITD=/nonexistent \
	$GO test -count=1 -timeout 60m "${first[@]}"

stamp "waiting for the background builds"
if ! wait "$builds"; then
	echo "ci: building the cached tools failed; the log:" >&2
	tail -50 "$log" >&2
	exit 1
fi
trap - EXIT
stamp "builds done"
export PODWARDEN_KUBE_BIN_DIR=$CACHE/kube PODWARDEN_BUILDKITD=$CACHE/buildkit/buildkitd-v0.34.2
stamp "phase two: the packages that need kube-apiserver or buildkitd"
# (nodetest's unit tests here; its TestNode is `make test-node`.)
$GO test -count=1 -timeout 40m "${later[@]}"
(cd internal/image/buildkit && $GO test -count=1 -timeout 20m ./...)
stamp "the node test"
$MAKE test-node
stamp "done"
