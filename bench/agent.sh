#!/usr/bin/env bash
# Measures podwarden agent on this machine's real cgroup tree (root):
# protection latency p50/p99 over N new containers, then idle CPU and RSS
# with IDLE target containers among ~5,000 processes, side by side with
# earlyoom (the anchor: a node daemon in C that polls /proc/meminfo) over
# the same window, as ratios.
# The agent is the DaemonSet's binary built as the container image builds
# it (static, stripped): that is what runs on every node.
# Usage: bench/agent.sh [N] [IDLE]   (defaults 1000, 200)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
IDLE=${2:-200}
mkdir -p bin
CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o bin/podwarden-agent-static ./cmd/podwarden-agent
go build -o bin/agent-bench ./bench/agent
command -v earlyoom >/dev/null || apt-get install -y earlyoom >/dev/null

# Background processes so the agent's host scans see a busy node.
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT
have=$(find /proc -maxdepth 1 -regex '/proc/[0-9]+' | wc -l)
for _ in $(seq 1 $((5000 - have - IDLE - 1))); do sleep 3600 & pids+=($!); done
# earlyoom acts only below 1% available memory, and --dryrun never kills.
earlyoom -m 1 -s 100 -r 0 --dryrun >/dev/null 2>&1 & pids+=($!)
anchor=$!

bin/agent-bench -n "$N" -idle "$IDLE" -bin bin/podwarden-agent-static -anchor-pid "$anchor"
