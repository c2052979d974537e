# service.sh: sourced by /init and run by the test (sh /pw/service.sh
# standins) to start what a node's init system would.

# service NAME ADJ CMD...: start CMD in /system.slice/NAME.service at ADJ,
# logging to /var/log/NAME.log.
service() {
	n=$1 a=$2
	shift 2
	mkdir -p /sys/fs/cgroup/system.slice/$n.service
	sh -c 'echo $$ > /sys/fs/cgroup/system.slice/$0.service/cgroup.procs; echo $1 > /proc/self/oom_score_adj; shift; exec "$@"' \
		"$n" "$a" "$@" >> /var/log/$n.log 2>&1 &
}

# pids COMM: the pids whose comm is COMM (busybox pidof misses a comm of
# the full 15 bytes, such as systemd-network).
pids() {
	for p in /proc/[0-9]*; do
		[ "$(cat $p/comm 2>/dev/null)" = "$1" ] && echo ${p#/proc/}
	done
}

# standins: host daemons, what a node OOM takes first as Kubernetes ships
# it. Named like the real ones (the kernel log and podwarden's protected:
# rules see the comm; the kernel keeps 15 bytes, systemd-network), at adj
# 0, doing nothing. Starts those not running.
standins() {
	for d in sshd systemd-networkd; do
		[ -e /usr/sbin/$d ] || ln /bin/busybox /usr/sbin/$d
		c=$(echo $d | cut -c1-15)
		[ -n "$(pids $c)" ] && continue
		service $d 0 sh -c "exec -a sleep /usr/sbin/$d 1000000"
	done
}

case "$1" in
standins) standins ;;
pids) pids "$2" ;;
esac
