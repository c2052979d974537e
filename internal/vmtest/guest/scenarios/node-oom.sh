# node-oom: the node runs out of memory, the pod has no limit. At -997 the
# pod loses to every adj-0 system daemon, so the kernel kills sshd and
# friends first, then (oom.group=1) the whole container. With the agent the
# pod's processes sit at 900 and only the hog dies.
for d in sshd systemd-network chronyd; do
	mkcg "/system.slice/$d.service"
	idle "$d" daemon "/system.slice/$d.service" 0
done
mkcg /system.slice/kubelet.service
idle kubelet kubelet /system.slice/kubelet.service -999
mkcg /system.slice/containerd.service
idle containerd runtime /system.slice/containerd.service -999
CTR=/kubepods/besteffort/pod8c2d7e1a-3b4f-4a5e-8d6c-7f8091a2b3c4/9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203f4e5d6c7b8a9
mkcg "$CTR" 1
shipped_pod "$CTR"
state "$CTR"
metric memavailable-kb-before "$(awk '/MemAvailable/{print $2}' /proc/meminfo)"
go_hog tail 240
