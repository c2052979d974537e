#!/usr/bin/env bash
# Soak of podwarden agent on this machine's real cgroup tree (root):
# 100,000 processes forked and 10,000 cgroups created and removed inside
# 20 target containers, with the agent's RSS, goroutines and CPU sampled.
# The anchor is the agent as it was before its state became per-target
# (git rev ANCHOR, default 87d647c), run through the same churn.
# Usage: bench/soak.sh [PROCS] [CGROUPS] [ANCHOR]
set -euo pipefail
cd "$(dirname "$0")/.."
PROCS=${1:-100000}
CGROUPS=${2:-10000}
ANCHOR=${3:-87d647c}
mkdir -p bin
CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o bin/podwarden-agent-static ./cmd/podwarden-agent
go build -o bin/agent-bench ./bench/agent
old=$(mktemp -d)
trap 'rm -rf "$old"' EXIT
git archive "$ANCHOR" | tar -x -C "$old"
(cd "$old" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o agent-anchor ./cmd/podwarden-agent)
echo "== podwarden agent (this tree)"
bin/agent-bench -soak -procs "$PROCS" -cgroups "$CGROUPS" -bin bin/podwarden-agent-static
echo "== anchor: podwarden agent at $ANCHOR"
bin/agent-bench -soak -procs "$PROCS" -cgroups "$CGROUPS" -bin "$old/agent-anchor"
