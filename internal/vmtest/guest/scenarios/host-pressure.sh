# host-pressure: memory runs short because of a host process (issue 19,
# item 5), not a target: a hog in a system slice grows to 6% available and
# holds, beside a pod with a server and a flat 120 MiB kernel. No target
# caused it, so podwarden ends none, and says why.
. /pw/pressure.sh
node_standins
POD=/kubepods/pod1b2c3d4e-5f60-4718-9a0b-1c2d3e4f5a6b/1b2c3d4e5f6047189a0b1c2d3e4f5a6b1b2c3d4e5f6047189a0b1c2d3e4f5a6b
mkcg "$POD" 1
dspawn app server "$POD" -997 idle -rss 30
dspawn python3 kernel "$POD" -997 idle -rss 120
mkcg /system.slice/backup.service
dhog tail /system.slice/backup.service 0 -rate 60 -until-avail 6
start_tool
protect_pods "$POD"
settle
watch_start
go_pressure tail 20
finish
kill -KILL "$(pidof_name tail)" 2>/dev/null
