# benign: a pod fills about three quarters of memory and stays there:
# anonymous memory capped at a third of it, and page cache from reading
# every file on the disk's data directories over and over. Nothing may
# die, in any mode: the node has headroom, however much cache churns.
. /pw/pressure.sh
node_standins
POD=/kubepods/pod8d4b3f6e-4a5c-4b8d-8e1f-0a9b8c7d6e5f/8d4b3f6e4a5c4b8d8e1f0a9b8c7d6e5f8d4b3f6e4a5c4b8d8e1f0a9b8c7d6e5f
mkcg "$POD" 1
total=$(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo)
dhog app "$POD" -997 -rate 50 -max $((total / 3))
dspawn reader reader "$POD" -997 read -dir /disk
start_tool
protect_pods "$POD"
settle
watch_start
start_clock
echo go > /run/go-app
hold 30
finish
