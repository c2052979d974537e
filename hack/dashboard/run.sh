#!/usr/bin/env bash
# Makes docs/dashboard.png: the chart's Grafana dashboard drawn from real
# series. A real podwarden agent (runtime-less mode, as on a host without a
# CRI runtime) protects test pod cgroups on this machine while a workload
# starts processes in them, undoes the agent's writes and runs containers
# into their memory limit; Debian's Prometheus scrapes the agent; render.py
# runs every panel's query over the HTTP API and draws the panels.
#
#   sudo hack/dashboard/run.sh [minutes]     (root, cgroup v1 or v2, about 12 min)
#
# Needs: make build, prometheus (apt-get install prometheus) and
# python3-matplotlib. Everything it creates is removed at exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
minutes=${1:-10}
id=podwarden-dashboard-$$
work=$(mktemp -d /tmp/podwarden-dashboard.XXXXXX)
agent_port=19808
prom_port=19090
pids=()

if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
	mem=/sys/fs/cgroup
	echo +memory > $mem/cgroup.subtree_control 2>/dev/null || true
else
	mem=/sys/fs/cgroup/memory
fi
root=$mem/$id

cleanup() {
	set +e
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	# Children first: a cgroup is removed once it and its children are empty.
	find "$root" -depth -type d 2>/dev/null | while read -r d; do
		while read -r p; do kill -9 "$p" 2>/dev/null; done <"$d/cgroup.procs"
		sleep 0.1
		rmdir "$d" 2>/dev/null
	done
	rm -rf "$work"
}
trap cleanup EXIT

# Three pods, one container each; the batch pod's container is limited to
# 64 MiB, so its jobs die by OOM kill.
pods=(
	"a1b2c3d4-0000-4000-8000-00000000000a/notebook"
	"a1b2c3d4-0000-4000-8000-00000000000b/worker"
	"a1b2c3d4-0000-4000-8000-00000000000c/batch"
)
dirs=()
for p in "${pods[@]}"; do
	uid=${p%/*}
	cid=$(printf '%s' "$p" | sha256sum | cut -c1-64)
	d=$root/kubepods/burstable/pod$uid/$cid
	mkdir -p "$d"
	dirs+=("$d")
done
batch=${dirs[2]}
if [ -f "$batch/memory.limit_in_bytes" ]; then
	echo $((64 << 20)) >"$batch/memory.limit_in_bytes"
else
	echo $((64 << 20)) >"$batch/memory.max"
fi

bin/podwarden-agent agent --no-cri --cgroup-selector "/$id/kubepods/**/pod*/*" \
	--cgroup-root /sys/fs/cgroup --metrics-addr 127.0.0.1:$agent_port \
	--interval 5s --log-format text --log-level warn 2>"$work/agent.log" &
pids+=($!)

cat >"$work/prometheus.yml" <<YML
global: {scrape_interval: 5s, evaluation_interval: 5s}
scrape_configs:
  - job_name: podwarden-metrics
    static_configs:
      - targets: ['127.0.0.1:$agent_port']
        labels: {node: $(hostname)}
YML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
	--web.listen-address=127.0.0.1:$prom_port >"$work/prometheus.log" 2>&1 &
pids+=($!)

# run_in CGROUP CMD...: run CMD with its process in CGROUP.
run_in() {
	local cg=$1
	shift
	sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cg" "$@"
}

start=$(date +%s)
end=$((start + minutes * 60))
n=0
while [ "$(date +%s)" -lt "$end" ]; do
	n=$((n + 1))
	# New processes in the notebook and worker pods: the agent raises
	# them to 900 (protection latency).
	for d in "${dirs[0]}" "${dirs[1]}"; do
		run_in "$d" sleep $((20 + RANDOM % 40)) &
	done
	# Something undoes the agent's write now and then (drift repairs).
	if [ $((n % 3)) -eq 0 ]; then
		for p in $(cat "${dirs[0]}/cgroup.procs"); do echo 0 >/proc/$p/oom_score_adj 2>/dev/null || true; done
	fi
	# Every 30 s a batch job outgrows its 64 MiB limit: a cgroup OOM kill.
	if [ $((n % 6)) -eq 0 ]; then
		run_in "$batch" python3 -c 'b = b"x" * (256 << 20)' 2>/dev/null &
	fi
	sleep 5
done
sleep 10
/usr/bin/python3 hack/dashboard/render.py --prometheus http://127.0.0.1:$prom_port \
	--dashboard deploy/helm/podwarden/dashboards/podwarden.json \
	--start "$start" --end "$(date +%s)" --out docs/dashboard.png
echo "agent log: $(wc -l <"$work/agent.log") lines"
