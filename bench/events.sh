#!/bin/sh
# Build a large kernel log from the fixtures (with rising timestamps and
# unrelated lines between reports) and time `podwarden events --file -o json`
# on it, side by side with two anchors over the same file:
#   grep    `grep -c 'invoked oom-killer'`: the floor, just reading the bytes;
#   cadvisor the OOM parser kubelet uses (bench/events, its own Go module).
# Each is run RUNS times (default 3); the median wall time is reported, and
# podwarden's throughput as a ratio of each anchor's.
# CARRIER=syslog wraps every line as /var/log/kern.log does ("Mar  3
# 04:12:09 node-a kernel: [ts] ..."), with another program's line among the
# unrelated ones; cadvisor reads only dmesg records, so it is left out then.
# BIN=path times another podwarden binary (an older build) on the same logs.
# Usage: bench/events.sh [MB...]   (default: 50 200)
set -eu
cd "$(dirname "$0")/.."
out=${TMPDIR:-/tmp}/podwarden-bench
runs=${RUNS:-3}
carrier=${CARRIER:-dmesg}
mkdir -p "$out" bin
if [ -n "${BIN:-}" ]; then
	bin=$BIN
elif go build -o bin/podwarden ./cmd/podwarden 2>/dev/null && ./bin/podwarden events --help >/dev/null 2>&1; then
	bin=./bin/podwarden
else
	echo "events command not registered yet: run the Go benchmark instead" >&2
	exec go test ./internal/oomreport -run XXX -bench . -benchmem
fi
cadvisor=
if [ "$carrier" != dmesg ]; then
	echo "CARRIER=$carrier: cadvisor reads only dmesg records; running without it" >&2
elif (cd bench/events && go build -o ../../bin/events-cadvisor .) 2>"$out/cadvisor-build.txt"; then
	cadvisor=./bin/events-cadvisor
else
	echo "cadvisor anchor did not build (see $out/cadvisor-build.txt); running without it" >&2
fi

# measure NAME CMD...: runs CMD $runs times with stdout in $out/NAME.out and
# sets $secs (median wall seconds) and $rss (largest peak RSS, KiB).
measure() {
	name=$1
	shift
	: >"$out/$name.times"
	rss=0
	i=0
	while [ "$i" -lt "$runs" ]; do
		t0=$(date +%s%N)
		/usr/bin/time -f %M -o "$out/$name.rss" "$@" >"$out/$name.out"
		t1=$(date +%s%N)
		echo $(((t1 - t0) / 1000)) >>"$out/$name.times"
		r=$(tail -n 1 "$out/$name.rss")
		[ "$r" -gt "$rss" ] && rss=$r
		i=$((i + 1))
	done
	secs=$(sort -n "$out/$name.times" | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]/1e6}')
}

mbps() { awk -v b="$bytes" -v s="$1" 'BEGIN {printf "%.1f", b/1048576/s}'; }

for mb in ${@:-50 200}; do
	log=$out/kern-$carrier-$mb.log
	if [ ! -s "$log" ]; then
		python3 - "$mb" "$log" "$carrier" <<'PY'
import re, sys, glob, os
mb, path, carrier = int(sys.argv[1]), sys.argv[2], sys.argv[3]
src = []
# The real and hand-made reports of the first benchmark (seed, host,
# synth), not the carrier fixtures, so figures stay comparable.
for f in sorted(glob.glob("internal/oomreport/testdata/*.log")):
    if os.path.basename(f).startswith(("seed-", "host-", "synth-")):
        src += [l for l in open(f) if l.startswith("[")]
noise = "eth0: link up, 1000Mbps, full-duplex\n"
other = "Mar  3 04:12:09 node-a systemd[1]: Started Session 3 of User ubuntu.\n"
ts = re.compile(r"^\[\s*\d+\.\d+\]")
pre = "Mar  3 04:12:09 node-a kernel: " if carrier == "syslog" else ""
t, size = 0.0, 0
with open(path, "w") as w:
    while size < mb << 20:
        for l in src:
            t += 0.000010
            s = pre + ts.sub("[%12.6f]" % t, l, count=1)
            w.write(s); size += len(s)
        for i in range(200):
            t += 0.001
            s = pre + "[%12.6f] %s" % (t, noise)
            if pre and i % 50 == 0:
                s = other
            w.write(s); size += len(s)
PY
	fi
	bytes=$(stat -c %s "$log")
	echo "$mb MB ($bytes bytes), median of $runs runs, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg):"

	measure pw "$bin" events --file "$log" -o json
	cp "$out/pw.out" "$out/out-$mb.json"
	pw=$(mbps "$secs")
	printf '  %-34s %8s reports  %7s MB/s  %6s s  peak RSS %s kB\n' "podwarden events -o json" "$(wc -l <"$out/pw.out")" "$pw" "$secs" "$rss"

	measure grep grep -c 'invoked oom-killer' "$log"
	g=$(mbps "$secs")
	printf '  %-34s %8s lines    %7s MB/s  %6s s  peak RSS %s kB\n' "grep -c 'invoked oom-killer'" "$(cat "$out/grep.out")" "$g" "$secs" "$rss"
	ratios="grep $(awk -v a="$pw" -v b="$g" 'BEGIN {printf "%.2f", a/b}')"

	if [ -n "$cadvisor" ]; then
		measure cadvisor "$cadvisor" "$log"
		c=$(mbps "$secs")
		printf '  %-34s %8s OOMs     %7s MB/s  %6s s  peak RSS %s kB\n' "cadvisor oomparser" "$(cat "$out/cadvisor.out")" "$c" "$secs" "$rss"
		ratios="$ratios, cadvisor $(awk -v a="$pw" -v b="$c" 'BEGIN {printf "%.2f", a/b}')"
	fi
	echo "  podwarden/anchor throughput: $ratios"
done
