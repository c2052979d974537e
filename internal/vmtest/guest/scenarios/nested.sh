# nested: a systemd-like tree inside the container (a "system container"):
# init.scope holds the init, services sit below system.slice, and systemd
# >= 253 (OOMPolicy=kill) sets memory.oom.group=1 on each service. The
# agent must clear oom.group on the container and on every descendant.
CTR=/kubepods/pod4d5e6f70-8192-4a3b-b4c5-d6e7f8091a2b/dddd000000000000000000000000000000000000000000000000000000000004
mkcg "$CTR" 1 64M
mkcg "$CTR/init.scope"
idle systemd init "$CTR/init.scope" -997
I=$LASTPID
mkcg "$CTR/system.slice/app.service" 1
idle app bystander "$CTR/system.slice/app.service" -997
A=$LASTPID
mkcg "$CTR/system.slice/db.service" 1
idle postgres bystander "$CTR/system.slice/db.service" -997
P=$LASTPID
hog tail "$CTR/system.slice/app.service" -997
H=$LASTPID
start_agent
protect_wait "$CTR" "$I" "$A" "$P" "$H"
[ "$MODE" = podwarden ] && metric "service-oomgroup-latency-ms" \
	"$(wait_value "$CG$CTR/system.slice/app.service/memory.oom.group" 0 10000)"
for c in "" /init.scope /system.slice/app.service /system.slice/db.service; do
	state "$CTR$c"
done
go_hog tail 120
