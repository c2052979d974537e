# jupyter: a notebook pod as JupyterHub runs it: an init (pid 1 in the
# pod's PID namespace), the server (jupyter-lab) and a kernel (python3)
# whose cell allocates 30 MiB/s inside a C call, so it does not notice
# SIGINT; SIGTERM ends it. The server must outlive the episode.
. /pw/pressure.sh
node_standins
POD=/kubepods/pod7c3a2e5d-3f4b-4a7c-9d0e-9f8a7b6c5d4e/7c3a2e5d3f4b4a7c9d0e9f8a7b6c5d4e7c3a2e5d3f4b4a7c9d0e9f8a7b6c5d4e
mkcg "$POD" 1
mkfifo /run/go-python3
# Each process of the pod writes its own line to /run/procs: inside the
# PID namespace $! would be the pod's pid, and /proc (the node's) tells
# each one its node pid.
PODDIR="$CG$POD" CGP="$POD" sh -c 'echo $$ > "$PODDIR/cgroup.procs"; echo -997 > /proc/self/oom_score_adj
exec unshare -p -f sh -c "exec -a sh /disk/bin/tini /pw/jupyter-pod.sh"' &
i=0
while [ "$(grep -c " $POD\$" /run/procs)" -lt 3 ] && [ $i -lt 300 ]; do usleep 100000; i=$((i + 1)); done
start_tool
protect_pods "$POD"
settle
watch_start
go_pressure python3 180
finish
