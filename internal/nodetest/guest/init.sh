#!/bin/busybox sh
# PID 1 of the node guest. Stage 1 runs on the initramfs, which runc cannot
# pivot_root away from ("invalid argument"): copy everything to a tmpfs and
# switch_root into it. Stage 2 brings up the node: kernel filesystems,
# cgroup v2, modules, network, then guestd (the host's way in), the daemon
# stand-ins, containerd and kubelet, each in its own service cgroup as
# systemd would put them. Console lines starting with PWNODE are read by
# internal/nodetest.
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
if [ ! -e /.stage2 ]; then
	/bin/busybox mkdir -p /proc /newroot
	/bin/busybox mount -t proc proc /proc
	/bin/busybox mount -t tmpfs -o size=1536m,mode=755 tmpfs /newroot
	cd /
	for f in *; do
		case "$f" in newroot|proc) ;; *) /bin/busybox cp -a "$f" /newroot/ ;; esac
	done
	/bin/busybox touch /newroot/.stage2
	/bin/busybox umount /proc
	exec /bin/busybox switch_root /newroot /init
fi

/bin/busybox --install -s /bin
. /pw/node.env
mkdir -p /proc /sys /dev /run /tmp /var/log /var/lib/kubelet
[ -e /var/run ] || ln -s /run /var/run
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup || echo "PWNODE fatal cgroup2"
# As systemd does. With apparmor=0 on the kernel command line it is there
# but holds no apparmor directory: the node runs without AppArmor.
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount --make-rshared /
echo -1000 > /proc/self/oom_score_adj
for m in llc stp bridge veth overlay e1000 br_netfilter; do
	insmod /pw/modules/$m.ko || echo "PWNODE fatal insmod $m"
done
# The data disk (DataDir): files whose page cache a pod can churn, the
# reclaimable memory whose refaults make memory pressure (PSI) rise on a
# real node; on the tmpfs root nothing can be reclaimed without swap.
if [ -f /pw/disk-modules.order ]; then
	for m in $(cat /pw/disk-modules.order); do
		insmod "$m" || echo "PWNODE fatal insmod $m"
	done
	i=0
	while [ ! -b /dev/vda ] && [ $i -lt 300 ]; do usleep 100000; i=$((i + 1)); done
	mkdir -p /mnt/data
	mount -t ext4 -o ro /dev/vda /mnt/data || echo "PWNODE fatal mounting the data disk"
fi
hostname "$NODE_NAME"
echo "127.0.0.1 localhost" > /etc/hosts
echo "10.0.2.15 $NODE_NAME" >> /etc/hosts
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
echo 1 > /proc/sys/net/ipv4/ip_forward
mkdir -p /sys/fs/cgroup/system.slice
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
	echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control
	echo "+$c" > /sys/fs/cgroup/system.slice/cgroup.subtree_control
done

. /pw/service.sh
service guestd -1000 /usr/local/bin/guestd -addr :7070
standins
echo "PWNODE up $(cut -d' ' -f1 /proc/uptime)"

service containerd -999 /usr/local/bin/containerd --config /etc/containerd/config.toml
# A deadline in guest seconds, not a count of tries: under TCG on a busy
# host one ctr run can take seconds.
until [ -S /run/containerd/containerd.sock ] && ctr version >/dev/null 2>&1; do
	[ "$(cut -d. -f1 /proc/uptime)" -gt 900 ] && { echo "PWNODE fatal containerd: $(tail -3 /var/log/containerd.log)"; break; }
	sleep 1
done
for img in /pw/images/*.tar; do
	ctr -n k8s.io images import "$img" >/dev/null 2>>/var/log/import.log || echo "PWNODE fatal import $img"
done
echo "PWNODE containerd $(cut -d' ' -f1 /proc/uptime)"

service kubelet -999 /usr/local/bin/kubelet --config=/var/lib/kubelet/config.yaml \
	--kubeconfig=/var/lib/kubelet/kubeconfig --hostname-override="$NODE_NAME" \
	--node-ip=10.0.2.15 --v=1
echo "PWNODE kubelet $(cut -d' ' -f1 /proc/uptime)"
while :; do sleep 3600; done
