# two-kernels: a notebook server with two kernels, both python3 (issue
# 19): one holds 150 MiB flat, the other's cell grows 30 MiB/s inside a C
# call (SIGINT unnoticed). The growing one ends; the flat one and the
# server live.
. /pw/pressure.sh
node_standins
POD=/kubepods/pod0a1b2c3d-4e5f-4a6b-9c8d-7e6f5a4b3c2d/0a1b2c3d4e5f4a6b9c8d7e6f5a4b3c2d0a1b2c3d4e5f4a6b9c8d7e6f5a4b3c2d
mkcg "$POD" 1
dspawn jupyter-lab server "$POD" -997 idle -rss 60
DFILE=/disk/bin/python3
dspawn py-flat kernel "$POD" -997 idle -rss 150
DFILE=/disk/bin/python3
dhog py-grow "$POD" -997 -rate 30 -on-int ignore
start_tool
protect_pods "$POD"
settle
watch_start
go_pressure py-grow 180
finish
