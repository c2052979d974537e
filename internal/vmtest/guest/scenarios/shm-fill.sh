# shm-fill: a pod fills a tmpfs file (as /dev/shm) until 6% of memory is
# left (issue 19, item 2). The memory is charged to the pod until the file
# goes, whatever process ends: podwarden must end nothing and say why.
. /pw/pressure.sh
node_standins
POD=/kubepods/pod5e4d3c2b-1a0f-4e9d-8c7b-6a5f4e3d2c1b/5e4d3c2b1a0f4e9d8c7b6a5f4e3d2c1b5e4d3c2b1a0f4e9d8c7b6a5f4e3d2c1b
mkcg "$POD" 1
# /dev/shm as a node has it (the guest's /run is capped at half of RAM,
# the default): a tmpfs that may take all of memory.
mkdir -p /dev/shm
mount -t tmpfs -o size=100% tmpfs /dev/shm
dspawn app server "$POD" -997 idle -rss 30
dhog dd "$POD" -997 -rate 60 -file /dev/shm/fill -until-avail 6
start_tool
protect_pods "$POD"
settle
watch_start
# Until the fill is done (on a saturated host it takes minutes, not the
# 8 s it takes on a quiet one), then long enough for the engine to judge
# the node with the fill held.
go_wait dd 240 held
sleep 10
finish
# The next cell in this guest starts with its memory back.
kill -KILL "$(pidof_name dd)" 2>/dev/null
rm -f /dev/shm/fill
umount /dev/shm
