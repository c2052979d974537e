#!/usr/bin/env bash
# bench/ps.sh: time `podwarden ps` against procps ps and the customer's
# oom_info.py on a node with many processes.
#
# Starts N (default 5000) sleeping processes, builds bin/podwarden, then in
# one run times, side by side:
#   bin/podwarden ps
#   bin/podwarden ps -o wide
#   ps -e -H -o pid,ppid,comm,oom,oomadj      (the same columns as podwarden ps)
#   python3 bench/oom_info.py                 (the seed's script)
# and prints median/min wall time, the ratio to procps, and peak RSS.
# The goal: podwarden ps <= 0.3x procps wall time, peak RSS < 30 MiB.
#
# Usage: bench/ps.sh [N]      env: RUNS (default 10), WARMUP (default 2),
#                             NO_HYPERFINE=1 to time with a bash loop
# Needs: bash, go, procps, python3, /usr/bin/time (apt-get install time);
# uses hyperfine when installed (apt-get install hyperfine), else a loop.
set -euo pipefail

N=${1:-5000}
RUNS=${RUNS:-10}
WARMUP=${WARMUP:-2}
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
sleepers=()
cleanup() {
	# Kill only the sleepers this script started, by pid.
	if ((${#sleepers[@]})); then
		kill "${sleepers[@]}" 2>/dev/null || true
		wait "${sleepers[@]}" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need() { command -v "$1" >/dev/null || { echo "ps.sh: $1 not found ($2)" >&2; exit 1; }; }
need ps "apt-get install procps"
need python3 "apt-get install python3"
need go "install Go"
[[ -x /usr/bin/time ]] || { echo "ps.sh: /usr/bin/time not found (apt-get install time)" >&2; exit 1; }

# Build first, so compiling does not run next to the timings.
have_podwarden=0
if go build -o bin/podwarden ./cmd/podwarden 2>"$tmp/build.log"; then
	if bin/podwarden ps --help >/dev/null 2>&1; then
		have_podwarden=1
	else
		echo "ps.sh: bin/podwarden has no ps command yet; timing the others only" >&2
	fi
else
	echo "ps.sh: go build ./cmd/podwarden failed; timing the others only:" >&2
	head -5 "$tmp/build.log" >&2
fi

before=$(find /proc -maxdepth 1 -name '[0-9]*' | wc -l)
echo "starting $N sleepers ($before processes already) ..."
for ((i = 0; i < N; i++)); do
	sleep 100000 &
	sleepers+=($!)
done
total=$(find /proc -maxdepth 1 -name '[0-9]*' | wc -l)
echo "processes now: $total"
echo

names=() cmds=()
add() { names+=("$1"); cmds+=("$2"); }
# argv splits a command string on spaces (no command here quotes anything).
argv() { read -ra ARGV <<<"$1"; }
if ((have_podwarden)); then
	add "podwarden ps" "bin/podwarden ps"
	add "podwarden ps -o wide" "bin/podwarden ps -o wide"
fi
add "procps ps -H" "ps -e -H -o pid,ppid,comm,oom,oomadj"
add "oom_info.py" "python3 bench/oom_info.py"

# Output sanity: every tool should list about as many processes.
for i in "${!cmds[@]}"; do
	argv "${cmds[$i]}"
	lines=$("${ARGV[@]}" 2>"$tmp/err.$i" | wc -l) || true
	printf '%-22s %6d lines of output' "${names[$i]}" "$lines"
	[[ -s "$tmp/err.$i" ]] && printf '  (stderr: %s)' "$(head -c 120 "$tmp/err.$i" | tr '\n' ' ')"
	echo
done
echo

# Wall time in ms per command: median and min over RUNS.
declare -A median fastest
if [[ -z ${NO_HYPERFINE:-} ]] && command -v hyperfine >/dev/null; then
	hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --style basic \
		--export-json "$tmp/hf.json" "${cmds[@]}" >"$tmp/hf.log" 2>&1 || {
		cat "$tmp/hf.log" >&2
		exit 1
	}
	while IFS=$'\t' read -r cmd med min; do
		for i in "${!cmds[@]}"; do
			[[ "${cmds[$i]}" == "$cmd" ]] && median[$i]=$med && fastest[$i]=$min
		done
	done < <(python3 -c '
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(r["command"], "%.1f" % (r["median"] * 1e3), "%.1f" % (r["min"] * 1e3), sep="\t")
' "$tmp/hf.json")
	timer=hyperfine
else
	for i in "${!cmds[@]}"; do
		argv "${cmds[$i]}"
		for ((w = 0; w < WARMUP; w++)); do "${ARGV[@]}" >/dev/null 2>&1 || true; done
		: >"$tmp/t.$i"
	done
	# Round-robin, so load changes hit every command alike.
	for ((r = 0; r < RUNS; r++)); do
		for i in "${!cmds[@]}"; do
			argv "${cmds[$i]}"
			t0=$(date +%s%N)
			"${ARGV[@]}" >/dev/null 2>&1 || true
			t1=$(date +%s%N)
			echo $(((t1 - t0) / 1000)) >>"$tmp/t.$i"
		done
	done
	for i in "${!cmds[@]}"; do
		read -r med min < <(sort -n "$tmp/t.$i" | awk '{a[NR] = $1} END {
			m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
			printf "%.1f %.1f\n", m / 1000, a[1] / 1000 }')
		median[$i]=$med fastest[$i]=$min
	done
	timer="date +%s%N loop"
fi

# Peak RSS in KiB, the largest of three runs.
declare -A rss
for i in "${!cmds[@]}"; do
	max=0
	argv "${cmds[$i]}"
	for _ in 1 2 3; do
		/usr/bin/time -f '%M' -o "$tmp/rss" "${ARGV[@]}" >/dev/null 2>&1 || true
		kb=$(tail -1 "$tmp/rss")
		((kb > max)) && max=$kb
	done
	rss[$i]=$max
done

ref=""
for i in "${!cmds[@]}"; do [[ "${names[$i]}" == "procps ps -H" ]] && ref=$i; done

echo "$total processes, $RUNS runs each ($timer), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-22s %11s %9s %13s %13s\n' command "median ms" "min ms" "vs procps" "peak RSS MiB"
for i in "${!cmds[@]}"; do
	ratio=$(awk -v a="${median[$i]}" -v b="${median[$ref]}" 'BEGIN { printf "%.2fx", a / b }')
	mib=$(awk -v k="${rss[$i]}" 'BEGIN { printf "%.1f", k / 1024 }')
	printf '%-22s %11s %9s %13s %13s\n' "${names[$i]}" "${median[$i]}" "${fastest[$i]}" "$ratio" "$mib"
done

if ((have_podwarden)); then
	echo
	verdict=0
	ratio=$(awk -v a="${median[0]}" -v b="${median[$ref]}" 'BEGIN { print a / b }')
	if awk -v r="$ratio" 'BEGIN { exit !(r <= 0.3) }'; then
		echo "PASS podwarden ps wall time $(printf %.2f "$ratio")x procps (goal <= 0.3x)"
	else
		echo "FAIL podwarden ps wall time $(printf %.2f "$ratio")x procps (goal <= 0.3x)"
		verdict=1
	fi
	for i in 0 1; do
		if ((rss[$i] < 30 * 1024)); then
			echo "PASS ${names[$i]} peak RSS $((rss[$i] / 1024)) MiB (goal < 30 MiB)"
		else
			echo "FAIL ${names[$i]} peak RSS $((rss[$i] / 1024)) MiB (goal < 30 MiB)"
			verdict=1
		fi
	done
	exit $verdict
fi
