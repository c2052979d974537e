#!/bin/busybox sh
# PID 1 of the guest: mount the kernel filesystems, run every scenario named
# in /pw/plan, print results on the console, power off. It runs at
# oom_score_adj -1000 so the OOM killer can never pick the harness itself;
# every scenario process sets its own value (see spawn in lib.sh).
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /run /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup || echo "PWFATAL cgroup2 mount failed"
echo -1000 > /proc/self/oom_score_adj
echo +memory > /sys/fs/cgroup/cgroup.subtree_control || echo "PWFATAL +memory failed"
# The pressure scenarios' virtio disk: binaries whose pages can be evicted,
# data to read. Debian builds virtio and ext4 as modules.
if [ -f /pw/modules.order ]; then
	for m in $(cat /pw/modules.order); do
		insmod "$m" || echo "PWFATAL insmod $m failed"
	done
	i=0
	while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do usleep 100000; i=$((i + 1)); done
	mkdir -p /disk
	mount -t ext4 -o ro /dev/vda /disk || echo "PWFATAL mounting the disk failed"
	# A dynamically linked binary (earlyoom) finds its loader and libc on
	# the disk, as on a node.
	[ -d /disk/lib64 ] && ln -s /disk/lib64 /lib64
	[ -d /disk/lib ] && ln -s /disk/lib /lib
fi
mode=$(cat /pw/mode)
echo "PWBOOT mode=$mode machine=$(uname -m) kernel=$(uname -r) mem_kb=$(awk '/MemTotal/{print $2}' /proc/meminfo) uptime=$(cut -d' ' -f1 /proc/uptime)"
# What the guest runs, for the arm64 suite's proof that it ran the binary
# it was given on the machine it claims.
for b in /pw/podwarden /disk/bin/podwarden; do
	[ -f "$b" ] && echo "PWBIN $(sha256sum "$b")"
done
for s in $(cat /pw/plan); do
	echo "PWBEGIN $s uptime=$(cut -d' ' -f1 /proc/uptime)"
	echo "PWMARK begin $s" > /dev/kmsg
	sh /pw/run.sh "$s" "$mode"
	echo "PWMARK end $s" > /dev/kmsg
	# /dev/kmsg keeps the record format internal/kmsg parses (prio,seq,usec;text).
	# Reading it blocks at the end of the buffer, hence the timeout.
	echo "PWKMSG begin $s"
	timeout 1 cat /dev/kmsg | sed -n "\\|;PWMARK begin $s\$|,\\|;PWMARK end $s\$|p"
	echo "PWKMSG end $s"
	echo "PWEND $s uptime=$(cut -d' ' -f1 /proc/uptime)"
done
echo "PWDONE uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
poweroff -f
