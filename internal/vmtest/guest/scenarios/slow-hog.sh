# slow-hog: a pod's hog grows 20 MiB/s while a reader in the same pod reads
# files from the disk over and over: page cache is evicted and read back,
# and the node thrashes long before it runs out. The pod is Guaranteed
# (-997, memory.oom.group=1), as Kubernetes ships it.
. /pw/pressure.sh
node_standins
POD=/kubepods/pod5a1e0c3b-1d2f-4e5a-9b8c-7d6e5f4a3b2c/5a1e0c3b1d2f4e5a9b8c7d6e5f4a3b2c5a1e0c3b1d2f4e5a9b8c7d6e5f4a3b2c
mkcg "$POD" 1
dspawn app server "$POD" -997 idle -rss 30
dspawn reader reader "$POD" -997 read -dir /disk/data
dhog tail "$POD" -997 -rate 20
start_tool
protect_pods "$POD"
settle
watch_start
go_pressure tail 180
finish
