# pressure.sh: helpers of the pressure scenarios (busybox ash), sourced by
# them after lib.sh. A scenario is run as cells "scenario/mode" with MODE
# kernel (nothing but the kernel, as Kubernetes ships), earlyoom (Debian's
# package, its defaults) or podwarden (the agent with --preempt).
#
# Every process but the harness runs from the virtio disk (/disk/bin/NAME,
# a hard link to pwload or the real binary), so its pages are page cache
# the kernel can evict, as on a node. The monitor and the harness run from
# the initramfs at -1000.
#
# Results, on top of lib.sh's: metrics low-ms (MemAvailable first below
# 20%), onset-ms (pressure onset), death-NAME-ms (when a process was seen
# dead), all after the workload started; hb-maxgap-ms (longest kubelet
# heartbeat gap after the start), hb-short-maxgap-ms (after low-ms),
# hb-control-ms (before the start), minavail-kb.
# Kernel OOM kills come from the cell's kernel log, the tools' actions from
# their logs (PWAGENT lines).

CELL0=$(now_ms)

# dspawn NAME ROLE CGROUP ADJ ARGS...: run /disk/bin/NAME ARGS inside
# CGROUP at ADJ. NAME is what the results call the process; DFILE (a
# binary's path) and DARGV0 (its argv[0]), when set, are what it runs as,
# for this call only: what a process calls itself is its own choice.
dspawn() {
	n=$1 role=$2 cg=$3 adj=$4
	shift 4
	f=${DFILE:-/disk/bin/$n}
	sh -c 'echo $$ > "$1/cgroup.procs" || exit 111
echo "$2" > /proc/self/oom_score_adj || exit 112
f=$3 a=$4; shift 4
exec -a "$a" "$f" "$@"' dspawn "$CG$cg" "$adj" "$f" "${DARGV0:-$f}" "$@" &
	LASTPID=$!
	DFILE="" DARGV0=""
	echo "$n $LASTPID $role $cg" >> /run/procs
}

# dhog NAME CGROUP ADJ HOGFLAGS...: a pwload hog waiting for go_pressure.
dhog() {
	n=$1 cg=$2 adj=$3
	shift 3
	mkfifo "/run/go-$n"
	dspawn "$n" hog "$cg" "$adj" hog -go "/run/go-$n" -mark "/run/mark-$n" "$@"
}

# node_standins: the node's own daemons. sshd at 0 is what the kernel and
# earlyoom pick while pods sit at -997; the kubelet stand-in at -999
# beats every 100 ms and logs every gap longer than 200 ms.
node_standins() {
	mkcg /system.slice/sshd.service
	dspawn sshd daemon /system.slice/sshd.service 0 idle -rss 4
	mkcg /system.slice/kubelet.service
	: > /run/hb-gaps
	dspawn kubelet kubelet /system.slice/kubelet.service -999 heartbeat -every 100ms -out /run/hb -gaps /run/hb-gaps
}

# start_tool: what runs beside the kernel in this MODE, in its own service
# cgroup, logging to /run/agent.log (printed as PWAGENT lines).
start_tool() {
	case "$MODE" in
	earlyoom)
		mkcg /system.slice/earlyoom.service
		# Debian's /etc/default/earlyoom: EARLYOOM_ARGS="-r 3600".
		sh -c 'echo $$ > /sys/fs/cgroup/system.slice/earlyoom.service/cgroup.procs
exec /disk/bin/earlyoom -r 3600' >> /run/agent.log 2>&1 &
		AGENTPID=$!
		echo "earlyoom $AGENTPID tool /system.slice/earlyoom.service" >> /run/procs
		;;
	podwarden)
		mkcg /system.slice/podwarden.service
		sh -c 'echo $$ > /sys/fs/cgroup/system.slice/podwarden.service/cgroup.procs
echo -998 > /proc/self/oom_score_adj
exec /disk/bin/podwarden agent --no-cri --cgroup-root /sys/fs/cgroup --proc-root /proc \
	--cgroup-selector "$0" --oom-score-adj 900 --interval 2s --log-format text --preempt' \
			"$SELECTOR" >> /run/agent.log 2>&1 &
		AGENTPID=$!
		echo "podwarden $AGENTPID tool /system.slice/podwarden.service" >> /run/procs
		;;
	esac
	[ -n "$AGENTPID" ] && echo "$AGENTPID" >> /run/agents
}

# protect_pods CGROUP...: in podwarden mode, wait until the agent has
# protected every process of each pod (the agent's steady state before
# the load starts); also wait for its pressure engine.
protect_pods() {
	[ "$MODE" = podwarden ] || return 0
	for cg in "$@"; do
		pids=$(awk -v c="$cg" '$4 == c {print $2}' /run/procs)
		protect_wait "$cg" $pids
	done
	i=0
	while ! grep -q "preempt engine running" /run/agent.log && [ $i -lt 300 ]; do
		usleep 100000
		i=$((i + 1))
	done
}

# settle: the same start for every cell: no page cache left from the one
# before, then a few quiet seconds, whose longest heartbeat gap is the
# control (hb-control-ms): what the busy host alone costs the guest.
settle() {
	sync
	echo 3 > /proc/sys/vm/drop_caches
	CTRL0=$(now_ms)
	sleep 3
}

# watch_start: the monitor, from the initramfs, watching every process of
# the cell.
watch_start() {
	w=$(awk '{printf "%s%s=%s", (NR > 1 ? "," : ""), $1, $2}' /run/procs)
	: > /run/mon
	/pw/pwload monitor -out /run/mon -watch "$w" &
	MONPID=$!
	echo "$MONPID" >> /run/agents
}

# go_pressure HOG TIMEOUT_S [AFTER_S]: release HOG and wait until it is
# dead or TIMEOUT_S have passed, then AFTER_S more (default 5) for anything
# that dies after it: a cascade. Everything else runs meanwhile.
go_pressure() {
	hpid=$(pidof_name "$1")
	start_clock
	echo go > "/run/go-$1"
	i=0
	while alive "$hpid" && [ $i -lt $(($2 * 10)) ]; do
		usleep 100000
		i=$((i + 1))
	done
	sleep "${3:-5}"
}

# start_clock: the load starts now (T0): every result is relative to it.
start_clock() {
	T0=$(now_ms)
	metric go-uptime-ms "$T0"
	metric setup-ms $((T0 - CELL0))
	[ -n "$AGENTPID" ] && metric cpu-tool-at-start-ms "$(cpu_ms "$AGENTPID")"
}

# cpu_ms PID: user+system time of PID so far, in ms (10 ms ticks).
cpu_ms() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print ($12 + $13) * 10}'; }

# go_wait HOG TIMEOUT_S UNTIL: release HOG, a process that may survive
# the episode (a notebook kernel heeding SIGINT): wait until it is dead,
# or its mark file has a line starting with UNTIL, or TIMEOUT_S have
# passed.
go_wait() {
	hpid=$(pidof_name "$1")
	start_clock
	echo go > "/run/go-$1"
	i=0
	while alive "$hpid" && ! grep -q "^$3" "/run/mark-$1" 2>/dev/null && [ $i -lt $(($2 * 10)) ]; do
		usleep 100000
		i=$((i + 1))
	done
}

# cache_churn PCT WHEN: a pod holding PCT% of memory flat (anonymous: a
# model loaded, a dataset in memory) beside a loader pod whose reader goes
# over 768 MiB of files, more than the node's memory, for 30 s: page cache
# churns through what is left (issue 19, item 4). WHEN is when the holder
# filled: before, before the tool started (a pod that has run a while);
# late, after the tool had seen the pod, and held 10 s before the churn:
# longer than the engine's recent window (a quarter of the 30 s growth
# window, at least 5 s), within the growth window.
cache_churn() {
	node_standins
	HOLDER=/kubepods/pod4c5d6e7f-8091-4a2b-9c3d-4e5f60718293/4c5d6e7f80914a2b9c3d4e5f607182934c5d6e7f80914a2b9c3d4e5f60718293
	LOADER=/kubepods/burstable/pod93827160-5f4e-4d3c-8b2a-1908f7e6d5c4/938271605f4e4d3c8b2a1908f7e6d5c4938271605f4e4d3c8b2a1908f7e6d5c4
	mkcg "$HOLDER" 1
	mkcg "$LOADER" 1
	dspawn app server "$HOLDER" -997 idle -rss 10
	mib=$(awk -v p="$1" '/MemTotal/{print int($2 / 1024 * p / 100)}' /proc/meminfo)
	metric held-target-mib "$mib"
	if [ "$2" = before ]; then
		dspawn holder holder "$HOLDER" -997 idle -rss "$mib"
		i=0
		while alive "$LASTPID" && [ "$(awk '/VmRSS/{print int($2 / 1024)}' "/proc/$LASTPID/status" 2>/dev/null || echo 0)" -lt "$mib" ] && [ $i -lt 1200 ]; do
			usleep 100000
			i=$((i + 1))
		done
	else
		dhog holder "$HOLDER" -997 -rate 0 -max "$mib"
	fi
	mkfifo /run/go-reader
	dspawn reader reader "$LOADER" -997 read -go /run/go-reader -dir /disk/churn
	start_tool
	protect_pods "$HOLDER" "$LOADER"
	if [ "$2" = late ]; then
		sync
		echo 3 > /proc/sys/vm/drop_caches
		held0=$(now_ms)
		echo go > /run/go-holder
		i=0
		while ! grep -q held /run/mark-holder 2>/dev/null && [ $i -lt 1200 ]; do
			usleep 100000
			i=$((i + 1))
		done
		metric holder-fill-ms $(($(now_ms) - held0))
		sleep 10
		CTRL0=$(now_ms)
		sleep 3
	else
		settle
	fi
	watch_start
	start_clock
	echo go > /run/go-reader
	hold 30
	finish
}

# hold S: let the cell run S seconds (benign load, deleted pod).
hold() { sleep "$1"; }

# finish: stop the monitor and turn what it, the heartbeat and the kernel
# log saw into results, relative to the start (T0).
finish() {
	kill -TERM "$MONPID" 2>/dev/null
	wait "$MONPID" 2>/dev/null
	LOW=""
	while read -r what a b c; do
		case "$what" in
		low) LOW=$a; metric low-ms $((a - T0)) ;;
		onset) metric onset-ms $((a - T0)) ;;
		dead) metric "death-$a-ms" $((c - T0)) ;;
		minavail_kb) metric minavail-kb "$a" ;;
		esac
	done < /run/mon
	# The hogs' own notes: signals received, size reached and when.
	for f in /run/mark-*; do
		[ -f "$f" ] || continue
		n=${f#/run/mark-}
		awk -v n="$n" -v t0="$T0" -v s="$S" '
			/^SIG/ && !seen[$1]++ { printf "PWRESULT {\"scenario\":\"%s\",\"kind\":\"metric\",\"name\":\"signal-%s-%s-ms\",\"value\":%d}\n", s, n, $1, $2 - t0 }
			/^held/ { printf "PWRESULT {\"scenario\":\"%s\",\"kind\":\"metric\",\"name\":\"held-%s-ms\",\"value\":%d}\n", s, n, $2 - t0 }
			/^grown/ { mib = $2; ms = $3 - t0 }
			END { if (mib) printf "PWRESULT {\"scenario\":\"%s\",\"kind\":\"metric\",\"name\":\"grown-%s-mib\",\"value\":%d}\nPWRESULT {\"scenario\":\"%s\",\"kind\":\"metric\",\"name\":\"grown-%s-ms\",\"value\":%d}\n", s, n, mib, s, n, ms }
		' "$f"
	done
	gap=0 ctrl=0 gapend=0 short=0
	while read -r len end; do
		[ "$end" -gt "$T0" ] && [ "$len" -gt "$gap" ] && gap=$len gapend=$((end - T0))
		[ -n "$LOW" ] && [ "$end" -gt "$LOW" ] && [ "$len" -gt "$short" ] && short=$len
		[ "$end" -gt "${CTRL0:-$T0}" ] && [ "$end" -le "$T0" ] && [ "$len" -gt "$ctrl" ] && ctrl=$len
	done < /run/hb-gaps
	metric hb-control-ms "$ctrl"
	# CPU the tool and the monitor used over the cell (ticks of 10 ms):
	# on a one-vCPU guest, what the tool takes the load does not get.
	for pair in "tool:$AGENTPID" "monitor:$MONPID"; do
		n=${pair%%:*} p=${pair#*:}
		[ -n "$p" ] && [ -r "/proc/$p/stat" ] || continue
		metric "cpu-$n-ms" "$(cpu_ms "$p")"
	done
	# Without a gap over 200 ms on file, the longest is at most that.
	[ "$gap" -eq 0 ] && gap=$(sed -n 's/.*maxgap_ms=\([0-9]*\).*/\1/p' /run/hb | awk '{print ($1 < 200 ? $1 : 200)}')
	metric hb-maxgap-ms "${gap:-0}"
	# The longest gap while memory was short (below 20% available): what
	# thrashing, not the busy host, costs kubelet.
	[ -n "$LOW" ] && metric hb-short-maxgap-ms "$short"
	[ "$gapend" -gt 0 ] && metric hb-maxgap-end-ms "$gapend"
	if alive "$(pidof_name kubelet)"; then check "kubelet heartbeat" alive; else check "kubelet heartbeat" dead; fi
}
