# late-arrivals: the agent is already running when the container is created
# and when a process is exec'd into it (kubectl exec gets -997 again). Both
# must be protected before the hog, which also arrives late, hits the limit.
CANARY=/kubepods/pod0a0a0a0a-1111-4222-8333-944445555666/aaaa000000000000000000000000000000000000000000000000000000000001
mkcg "$CANARY" 1
idle canary bystander "$CANARY" -997
C=$LASTPID
start_agent
# The canary proves the agent is up, so what follows is really late.
protect_wait "$CANARY" "$C"
CTR=/kubepods/burstable/pod7e6d5c4b-3a29-4817-a6f5-e4d3c2b1a098/bbbb000000000000000000000000000000000000000000000000000000000002
mkcg "$CTR" 1 48M
idle app bystander "$CTR" -997
A=$LASTPID
protect_wait "$CTR" "$A"
idle exec-shell bystander "$CTR" -997
E=$LASTPID
hog tail "$CTR" -997
H=$LASTPID
protect_wait "$CTR" "$E" "$H"
state "$CTR"
go_hog tail 120
