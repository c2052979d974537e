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

# standins: host daemons, what a node OOM takes first as Kubernetes ships
# it. Named like the real ones (the kernel log and podwarden's protected:
# rules see the comm; the kernel keeps 15 bytes, systemd-network), at adj
# 0, doing nothing. Starts those not running.
standins() {
	for d in sshd systemd-networkd; do
		[ -e /usr/sbin/$d ] || ln /bin/busybox /usr/sbin/$d
		c=$(echo $d | cut -c1-15)
		pidof $c >/dev/null 2>&1 && continue
		service $d 0 sh -c "exec -a sleep /usr/sbin/$d 1000000"
	done
}

[ "$1" = standins ] && standins
