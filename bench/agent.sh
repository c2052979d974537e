#!/usr/bin/env bash
# Measures podwarden agent on this machine's real cgroup tree (root):
# protection latency p50/p99 over N new containers, then idle CPU and RSS
# with IDLE target containers among ~5,000 processes.
# Usage: bench/agent.sh [N] [IDLE]   (defaults 1000, 200)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
IDLE=${2:-200}
go build -o bin/podwarden-full ./cmd/podwarden-full
go build -o bin/agent-bench ./bench/agent

# Background processes so the agent's host scans see a busy node.
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT
have=$(find /proc -maxdepth 1 -regex '/proc/[0-9]+' | wc -l)
for _ in $(seq 1 $((5000 - have - IDLE))); do sleep 3600 & pids+=($!); done

bin/agent-bench -n "$N" -idle "$IDLE" -bin bin/podwarden-full
