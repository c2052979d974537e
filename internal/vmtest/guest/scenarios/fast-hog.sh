# fast-hog: a pod's hog allocates as fast as the guest can (~175 MiB/s
# under TCG): seconds from plenty to nothing.
. /pw/pressure.sh
node_standins
POD=/kubepods/pod6b2f1d4c-2e3a-4f6b-8c9d-8e7f6a5b4c3d/6b2f1d4c2e3a4f6b8c9d8e7f6a5b4c3d6b2f1d4c2e3a4f6b8c9d8e7f6a5b4c3d
mkcg "$POD" 1
dspawn app server "$POD" -997 idle -rss 30
dhog tail "$POD" -997 -rate 0
start_tool
protect_pods "$POD"
settle
watch_start
go_pressure tail 120
finish
