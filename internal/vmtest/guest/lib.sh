# lib.sh: helpers for the guest scenarios (busybox ash).
# Output protocol, one line each on the console:
#   PWRESULT {json}   kind=proc (one per started process, at the end),
#                     kind=check (a value read during the run),
#                     kind=metric (a number, e.g. a protection latency in ms)
#   PWAGENT line      the agent's own log, for debugging a failed run
CG=/sys/fs/cgroup
SELECTOR='/kubepods*/**/pod*/*'
mkdir -p /pw/bin

# now_ms prints the uptime in milliseconds (/proc/uptime has 10 ms
# resolution; busybox date has no %N).
now_ms() {
	read -r up _ < /proc/uptime
	f=${up#*.}
	f=${f#0}
	echo $(( ${up%.*} * 1000 + f * 10 ))
}

# result KIND NAME VALUE: VALUE must already be JSON (number, true, "str").
result() {
	printf 'PWRESULT {"scenario":"%s","kind":"%s","name":"%s","value":%s}\n' "$S" "$1" "$2" "$3"
}
check() { result check "$1" "\"$2\""; }
metric() { result metric "$1" "$2"; }

# mkcg PATH [OOMGROUP [MEMMAX]]: create a cgroup and every missing parent,
# enabling the memory controller on the way down as kubelet and systemd do.
mkcg() {
	p=""
	for seg in $(echo "$1" | tr / ' '); do
		echo +memory > "$CG$p/cgroup.subtree_control" 2>/dev/null
		p="$p/$seg"
		mkdir -p "$CG$p"
	done
	[ -n "$2" ] && echo "$2" > "$CG$1/memory.oom.group"
	[ -n "$3" ] && echo "$3" > "$CG$1/memory.max"
	echo "$1" >> /run/cgroups
}

# spawn NAME ROLE CGROUP ADJ APPLET [ARGS...]: start a busybox APPLET whose
# comm (what the kernel log prints) is NAME, inside CGROUP at ADJ. The
# process moves itself and sets its adj before exec, so it never runs
# outside its cgroup or with the harness's -1000.
spawn() {
	n=$1 role=$2 cg=$3 adj=$4
	shift 4
	[ -e "/pw/bin/$n" ] || ln /bin/busybox "/pw/bin/$n"
	sh -c 'echo $$ > "$1/cgroup.procs" || exit 111
echo "$2" > /proc/self/oom_score_adj || exit 112
n=$3; a=$4; shift 4
exec -a "$a" "/pw/bin/$n" "$@"' spawn "$CG$cg" "$adj" "$n" "$@" &
	LASTPID=$!
	echo "$n $LASTPID $role $cg" >> /run/procs
}

# idle NAME ROLE CGROUP ADJ: a process that only sleeps (a daemon, a
# kubelet, a bystander in a container).
idle() { spawn "$1" "$2" "$3" "$4" sleep 100000; }

# hog NAME CGROUP ADJ: a process that waits for go_hog, then reads
# /dev/zero into one ever-growing line (busybox tail) until the OOM killer
# ends it. Waiting lets the agent protect everything before memory runs out.
hog() {
	mkfifo "/run/go-$1"
	spawn "$1" hog "$2" "$3" sh -c "read x < /run/go-$1; exec -a tail /pw/bin/$1 /dev/zero"
}

# go_hog NAME [TIMEOUT_S]: release the hog and wait until it has died.
go_hog() {
	pid=$(awk -v n="$1" '$1 == n {print $2}' /run/procs)
	t0=$(now_ms)
	echo go > "/run/go-$1"
	i=0
	while alive "$pid" && [ $i -lt $(( ${2:-120} * 10 )) ]; do
		usleep 100000
		i=$((i + 1))
	done
	metric "$1-lifetime-ms" $(( $(now_ms) - t0 ))
	# Group kills and the oom reaper finish asynchronously.
	sleep 1
}

alive() {
	[ -r "/proc/$1/stat" ] || return 1
	st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

pidof_name() { awk -v n="$1" '$1 == n {print $2}' /run/procs; }

# wait_value FILE WANT TIMEOUT_MS: poll until FILE holds WANT; prints the
# elapsed ms, or -1 on timeout.
wait_value() {
	t0=$(now_ms)
	while :; do
		v=$(cat "$1" 2>/dev/null)
		if [ "$v" = "$2" ]; then
			echo $(( $(now_ms) - t0 ))
			return 0
		fi
		if [ $(( $(now_ms) - t0 )) -gt "$3" ]; then
			echo -1
			return 1
		fi
		usleep 10000
	done
}

# start_agent: the agent as the DaemonSet would run it without a CRI
# runtime, in its own service cgroup at the shim's -998. A drifted adj
# raises no kernel event, so it is repaired by the full pass: --interval
# 2s bounds that repair here (the default is 10s).
start_agent() {
	[ "$MODE" = podwarden ] || return 0
	mkcg /system.slice/podwarden.service
	sh -c 'echo $$ > /sys/fs/cgroup/system.slice/podwarden.service/cgroup.procs
echo -998 > /proc/self/oom_score_adj
exec /pw/podwarden agent --no-cri --cgroup-root /sys/fs/cgroup --proc-root /proc \
	--cgroup-selector "$0" --oom-score-adj 900 --interval 2s --log-format text --log-level "$1"' \
		"$SELECTOR" "${AGENT_LOG_LEVEL:-info}" >> /run/agent.log 2>&1 &
	AGENTPID=$!
	echo "$AGENTPID" >> /run/agents
	FRESH=startup-
}

stop_agent() {
	[ -n "$AGENTPID" ] && kill -9 "$AGENTPID" 2>/dev/null
	AGENTPID=""
}

# protect_wait CGROUP PID...: in podwarden mode wait until the agent has
# written oom.group=0 on CGROUP and adj 900 on every PID; records each
# latency (-1: not within the budget). All waits of one call share one
# budget, PROTECT_MS, so an agent that does nothing costs the suite
# seconds, not minutes. In k8s mode there is nothing to wait for.
PROTECT_MS=${PROTECT_MS:-25000}
protect_wait() {
	cg=$1
	shift
	[ "$MODE" = podwarden ] || return 0
	deadline=$(( $(now_ms) + PROTECT_MS ))
	# The first wait after start_agent includes the agent's start-up (a
	# 25 MB Go binary under TCG): it is reported apart from the steady
	# state, which is what "protected as they appear" promises.
	metric "${FRESH}oomgroup-latency-ms" "$(wait_value "$CG$cg/memory.oom.group" 0 $(( deadline - $(now_ms) )))"
	for p in "$@"; do
		metric "${FRESH}adj-latency-ms" "$(wait_value "/proc/$p/oom_score_adj" 900 $(( deadline - $(now_ms) )))"
	done
	FRESH=""
}

# shipped_pod CGROUP: a container as Kubernetes ships it, at -997: two
# idle bystanders (app, worker) and a hog (tail), whose pids are A, B and
# H. The agent then starts and (podwarden mode) protects all three.
shipped_pod() {
	idle app bystander "$1" -997
	A=$LASTPID
	idle worker bystander "$1" -997
	B=$LASTPID
	hog tail "$1" -997
	H=$LASTPID
	start_agent
	protect_wait "$1" "$A" "$B" "$H"
}

# state CGROUP: record what the kernel will act on right now.
state() {
	check "oom.group $1" "$(cat "$CG$1/memory.oom.group")"
	while read -r n pid role cg; do
		[ "$cg" = "$1" ] && alive "$pid" && check "adj $n" "$(cat /proc/$pid/oom_score_adj)"
	done < /run/procs
}

report() {
	# Without --once the agent is a loop: it must still be running now.
	if [ "$MODE" = podwarden ]; then
		if [ -n "$AGENTPID" ] && alive "$AGENTPID"; then check "agent alive" yes; else check "agent alive" no; fi
	fi
	while read -r n pid role cg; do
		a=false
		alive "$pid" && a=true
		adj=$(cat "/proc/$pid/oom_score_adj" 2>/dev/null || echo null)
		printf 'PWRESULT {"scenario":"%s","kind":"proc","name":"%s","pid":%s,"role":"%s","cgroup":"%s","alive":%s,"adj":%s}\n' \
			"$S" "$n" "$pid" "$role" "$cg" "$a" "$adj"
	done < /run/procs
	[ -f /run/agent.log ] && sed 's/^/PWAGENT /' /run/agent.log
	for m in /sys/fs/cgroup/kubepods/*/*/memory.events; do
		[ -f "$m" ] && check "events ${m#/sys/fs/cgroup}" "$(tr '\n' ' ' < "$m")"
	done
}

cleanup() {
	stop_agent
	[ -f /run/agents ] && for p in $(cat /run/agents); do kill -9 "$p" 2>/dev/null; done
	while read -r n pid role cg; do kill -9 "$pid" 2>/dev/null; done < /run/procs
	wait
	rm -f /run/agent.log /run/agents /run/go-* /run/cgroups /run/mark-* /run/mon /run/hb /run/hb-gaps
	for top in kubepods system.slice; do
		[ -d "$CG/$top" ] && find "$CG/$top" -depth -type d -exec rmdir {} \; 2>/dev/null
	done
}
