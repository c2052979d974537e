#!/bin/sh
# Build a large kernel log from the fixtures (with rising timestamps and
# unrelated lines between reports) and time `podwarden events --file` on it.
# Usage: bench/events.sh [MB...]   (default: 50 200)
set -eu
cd "$(dirname "$0")/.."
out=${TMPDIR:-/tmp}/podwarden-bench
mkdir -p "$out"
if go build -o bin/podwarden ./cmd/podwarden 2>/dev/null && ./bin/podwarden events --help >/dev/null 2>&1; then
	bin=./bin/podwarden
else
	echo "events command not registered yet: run the Go benchmark instead" >&2
	exec go test ./internal/oomreport -run XXX -bench . -benchmem
fi
for mb in ${@:-50 200}; do
	log=$out/kern-$mb.log
	if [ ! -s "$log" ]; then
		python3 - "$mb" "$log" <<'PY'
import re, sys, glob
mb, path = int(sys.argv[1]), sys.argv[2]
src = []
for f in sorted(glob.glob("internal/oomreport/testdata/*.log")):
    src += [l for l in open(f) if l.startswith("[")]
noise = "eth0: link up, 1000Mbps, full-duplex\n"
ts = re.compile(r"^\[\s*\d+\.\d+\]")
t, size = 0.0, 0
with open(path, "w") as w:
    while size < mb << 20:
        for l in src:
            t += 0.000010
            s = ts.sub("[%12.6f]" % t, l, count=1)
            w.write(s); size += len(s)
        for _ in range(200):
            t += 0.001
            s = "[%12.6f] %s" % (t, noise)
            w.write(s); size += len(s)
PY
	fi
	bytes=$(stat -c %s "$log")
	/usr/bin/time -v "$bin" events --file "$log" -o json >"$out/out-$mb.json" 2>"$out/time-$mb.txt"
	secs=$(awk -F': ' '/Elapsed/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$out/time-$mb.txt")
	rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$out/time-$mb.txt")
	echo "$mb MB: $(wc -l <"$out/out-$mb.json") reports, $(awk -v b="$bytes" -v s="$secs" 'BEGIN{printf "%.1f", b/1048576/s}') MB/s, peak RSS ${rss} kB"
done
