#!/bin/sh
# Builds kube-apiserver v1.37.2 and etcd v3.6.5 from the Go module proxy
# into bench/image/.cache/kube (gitignored), for the webhook test
# (cmd/podwarden/image_apiserver_test.go). About 5-10 min on 2 cores.
set -ex
out="$(cd "$(dirname "$0")" && pwd)/.cache/kube"
mkdir -p "$out" && cd "$out"
export GOFLAGS=-mod=mod CGO_ENABLED=0
(cd / && GOFLAGS= go mod download k8s.io/kubernetes@v1.37.2)  # outside any module
rm -rf k8s && cp -r "$(go env GOMODCACHE)/k8s.io/kubernetes@v1.37.2" k8s && chmod -R u+w k8s
cd k8s
rm -f go.work go.work.sum
for m in $(go mod edit -json | python3 -c 'import json,sys; d=json.load(sys.stdin); print("\n".join(r["Old"]["Path"] for r in d.get("Replace") or [] if r["New"]["Path"].startswith("./staging")))'); do
  go mod edit -dropreplace="$m" -require="$m@v0.37.2"
done
go build -o ../kube-apiserver ./cmd/kube-apiserver
cd ..
(cd / && GOFLAGS= go mod download go.etcd.io/etcd/server/v3@v3.6.5)  # outside any module
rm -rf etcd-src && cp -r "$(go env GOMODCACHE)/go.etcd.io/etcd/server/v3@v3.6.5" etcd-src && chmod -R u+w etcd-src
cd etcd-src
for r in $(go mod edit -json | python3 -c 'import json,sys; d=json.load(sys.stdin); print("\n".join(r["Old"]["Path"]+"|"+r["New"]["Path"] for r in d.get("Replace") or []))'); do
  old=${r%%|*}; new=${r#*|}
  case "$new" in
    ../*) go mod edit -dropreplace="$old" -require="$old@v3.6.5" ;;
    *FORBIDDEN*) go mod edit -dropreplace="$old" ;;
  esac
done
go build -o ../etcd .
