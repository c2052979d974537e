#!/usr/bin/env bash
# Soak of podwarden agent on this machine's real cgroup tree (root):
# 100,000 processes forked and 10,000 cgroups created and removed inside
# 20 target containers, with the agent's RSS, heap, goroutines, CPU, open
# fds and inotify watches (the "inotify wd:" lines of /proc/PID/fdinfo)
# measured at both ends. The anchor is the agent as it was before its
# state became per-target (git rev ANCHOR, default 87d647c), run through
# the same churn.
#
# The cgroups mode churns pods instead: N cgroups (default 100,000)
# created and removed as kubepods/pod<uid>/<container>, each container a
# target while it lives, and nothing else; the anchor runs only if named.
#
# Usage: bench/soak.sh [PROCS] [CGROUPS] [ANCHOR]
#        bench/soak.sh cgroups [N] [ANCHOR]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ${1:-} == cgroups ]]; then
	args=(-procs 0 -cgroups 0 -pod-cgroups "${2:-100000}")
	ANCHOR=${3:-}
else
	args=(-procs "${1:-100000}" -cgroups "${2:-10000}")
	ANCHOR=${3:-87d647c}
fi
mkdir -p bin
CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o bin/podwarden-agent-static ./cmd/podwarden-agent
go build -o bin/agent-bench ./bench/agent
echo "== podwarden agent (this tree)"
bin/agent-bench -soak "${args[@]}" -bin bin/podwarden-agent-static
[[ -n $ANCHOR ]] || exit 0
old=$(mktemp -d)
trap 'rm -rf "$old"' EXIT
git archive "$ANCHOR" | tar -x -C "$old"
(cd "$old" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o agent-anchor ./cmd/podwarden-agent)
echo "== anchor: podwarden agent at $ANCHOR"
bin/agent-bench -soak "${args[@]}" -bin "$old/agent-anchor"
