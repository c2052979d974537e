# renamed-hog: a notebook pod (issue 19, item 1) whose hog runs from a
# file named systemd (comm "systemd", a default keep pattern) beside the
# server and a flat 120 MiB kernel. The hog ends, whatever it calls itself;
# the server, the kernel and the pod's init live.
. /pw/pressure.sh
node_standins
POD=/kubepods/pod2a7d9c1e-5b3f-4e8a-9c6d-1f2e3d4c5b6a/2a7d9c1e5b3f4e8a9c6d1f2e3d4c5b6a2a7d9c1e5b3f4e8a9c6d1f2e3d4c5b6a
mkcg "$POD" 1
dspawn app init "$POD" -997 idle -rss 2
dspawn jupyter-lab server "$POD" -997 idle -rss 60
dspawn python3 kernel "$POD" -997 idle -rss 120
dhog systemd "$POD" -997 -rate 60
start_tool
protect_pods "$POD"
settle
watch_start
go_pressure systemd 120
finish
