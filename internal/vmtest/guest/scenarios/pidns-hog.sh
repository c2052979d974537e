# pidns-hog: a pod whose init (pid 1 of the pod's PID namespace, as the
# runtime starts it) runs a server and, through unshare --pid --fork, a
# hog that is pid 1 of a PID namespace of its own (issue 19, item 1):
# being "pid 1" buys it nothing. The hog ends; the pod's real init and
# the server live. unshare itself exits when its child does (not
# signalled).
. /pw/pressure.sh
node_standins
POD=/kubepods/pod6d1e2f3a-4b5c-4d6e-8f7a-9b0c1d2e3f4a/6d1e2f3a4b5c4d6e8f7a9b0c1d2e3f4a6d1e2f3a4b5c4d6e8f7a9b0c1d2e3f4a
mkcg "$POD" 1
mkfifo /run/go-tail
PODDIR="$CG$POD" CGP="$POD" sh -c 'echo $$ > "$PODDIR/cgroup.procs"; echo -997 > /proc/self/oom_score_adj
exec unshare -p -f sh -c "exec -a sh /disk/bin/tini /pw/pidns-pod.sh"' &
i=0
while [ "$(grep -c " $POD\$" /run/procs)" -lt 4 ] && [ $i -lt 300 ]; do usleep 100000; i=$((i + 1)); done
start_tool
protect_pods "$POD"
settle
watch_start
go_pressure tail 120
finish
