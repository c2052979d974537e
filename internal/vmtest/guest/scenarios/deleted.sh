# deleted: a pod is deleted while it causes pressure. Its hog grows
# 40 MiB/s to 5% of memory available and holds there; it ignores SIGINT.
# The pod is deleted (every process SIGKILLed and its cgroups removed, as
# kubelet does) as soon as the hog gets a signal, or after it has held
# 3 s. A second pod must come to no harm, and nothing may be done to the
# deleted pod's cgroup afterwards.
. /pw/pressure.sh
node_standins
A=/kubepods/pod9e5c4a7f-5b6d-4c9e-9f2a-1b0c9d8e7f6a/9e5c4a7f5b6d4c9e9f2a1b0c9d8e7f6a9e5c4a7f5b6d4c9e9f2a1b0c9d8e7f6a
B=/kubepods/burstable/pod0f6d5b8a-6c7e-4d0f-8a3b-2c1d0e9f8a7b/0f6d5b8a6c7e4d0f8a3b2c1d0e9f8a7b0f6d5b8a6c7e4d0f8a3b2c1d0e9f8a7b
mkcg "$A" 1
mkcg "$B" 1
dspawn app server "$B" -997 idle -rss 100
dspawn worker server "$A" -997 idle -rss 10
dhog tail "$A" -997 -rate 40 -until-avail 5 -on-int ignore
start_tool
protect_pods "$A" "$B"
settle
watch_start
start_clock
echo go > /run/go-tail
i=0
while [ $i -lt 1800 ]; do
	if grep -q SIG /run/mark-tail 2>/dev/null; then break; fi
	if grep -q held /run/mark-tail 2>/dev/null; then
		held=$(awk '/held/{print $2}' /run/mark-tail)
		[ $(( $(now_ms) - held )) -ge 3000 ] && break
	fi
	usleep 50000
	i=$((i + 1))
done
metric delete-ms $(( $(now_ms) - T0 ))
# kubelet deleting the pod: kill what is left of it, then its cgroups.
awk -v c="$A" '$4 == c {print $2}' /run/procs | while read -r p; do kill -9 "$p" 2>/dev/null; done
j=0
while ! rmdir "$CG$A" 2>/dev/null && [ $j -lt 100 ]; do usleep 50000; j=$((j + 1)); done
rmdir "$CG${A%/*}" 2>/dev/null
[ -d "$CG$A" ] && check "pod deleted" no || check "pod deleted" yes
hold 8
finish
