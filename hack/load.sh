#!/usr/bin/env bash
# Runs a command beside a bounded CPU and fork load, the way CI's machine is
# often loaded right after a session: one busy loop per core and a loop that
# forks and execs /bin/true (hundreds to thousands of processes a second,
# each one an event on the host-wide process connector). The load ends with
# the command, or after LOAD_MAX_SECONDS (default 3600) whatever happens.
#
#   hack/load.sh go test -count=3 ./internal/procevent
#
# LOAD_CPUS (default: nproc) busy loops, LOAD_FORKERS (default 2) fork loops.
set -euo pipefail

cpus="${LOAD_CPUS:-$(nproc)}"
forkers="${LOAD_FORKERS:-2}"
max="${LOAD_MAX_SECONDS:-3600}"

pids=()
stop() {
	[ "${#pids[@]}" -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
}
trap stop EXIT INT TERM

processes() { awk '/^processes/ { print $2 }' /proc/stat; }
for _ in $(seq "$cpus"); do
	timeout "$max" sh -c 'while :; do :; done' &
	pids+=("$!")
done
for _ in $(seq "$forkers"); do
	timeout "$max" sh -c 'while :; do /bin/true; done' &
	pids+=("$!")
done

start=$(date +%s)
before=$(processes)
rc=0
"$@" || rc=$?
secs=$(( $(date +%s) - start ))
forks=$(( $(processes) - before ))
echo "load.sh: $cpus busy loops, $forkers fork loops; ${forks} forks in ${secs}s ($(( forks / (secs > 0 ? secs : 1) ))/s); load average $(cut -d' ' -f1-3 /proc/loadavg); exit $rc" >&2
exit "$rc"
