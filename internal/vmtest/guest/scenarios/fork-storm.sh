# fork-storm: a make -j of fat compilers (issue 19, item 3): a parent
# starting a 40 MiB child three times a second, beside a server. One kill
# of one child per cooldown cannot keep up; podwarden ends the parent and
# its children together, once, and the server lives.
. /pw/pressure.sh
node_standins
POD=/kubepods/pod8f7e6d5c-4b3a-4291-8f7e-6d5c4b3a2918/8f7e6d5c4b3a42918f7e6d5c4b3a29188f7e6d5c4b3a42918f7e6d5c4b3a2918
mkcg "$POD" 1
dspawn app server "$POD" -997 idle -rss 30
mkfifo /run/go-make
dspawn make hog "$POD" -997 spawn -go /run/go-make -n 60 -every 330ms -child /disk/bin/worker -mib 40
start_tool
protect_pods "$POD"
settle
watch_start
go_pressure make 60
finish
# The next cell starts with its memory back: whatever is left of the storm.
for p in $(cat "$CG$POD/cgroup.procs"); do
	[ "$p" = "$(pidof_name app)" ] || kill -KILL "$p" 2>/dev/null
done
