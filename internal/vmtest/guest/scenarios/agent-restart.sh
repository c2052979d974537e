# agent-restart: the agent is killed with SIGKILL (OOM, eviction, a node
# upgrade). While it is down a container is created and an old one drifts
# back to oom.group=1/-997. The restarted agent must catch up on both.
OLD=/kubepods/pod5e6f7081-92a3-4b4c-85d6-e7f8091a2b3c/eeee000000000000000000000000000000000000000000000000000000000005
mkcg "$OLD" 1 48M
idle old-app bystander "$OLD" -997
O=$LASTPID
hog old-tail "$OLD" -997
OH=$LASTPID
start_agent
protect_wait "$OLD" "$O" "$OH"
stop_agent
check "agent killed" "-9"
NEW=/kubepods/pod6f708192-a3b4-4c5d-96e7-f8091a2b3c4d/ffff000000000000000000000000000000000000000000000000000000000006
mkcg "$NEW" 1 48M
idle new-app bystander "$NEW" -997
N=$LASTPID
hog new-tail "$NEW" -997
NH=$LASTPID
echo 1 > "$CG$OLD/memory.oom.group"
for p in $O $OH; do echo -997 > "/proc/$p/oom_score_adj"; done
start_agent
protect_wait "$NEW" "$N" "$NH"
protect_wait "$OLD" "$O" "$OH"
# A process exec'd after the restart: the new agent must be a running
# loop, not a single catch-up pass.
idle new-exec bystander "$NEW" -997
protect_wait "$NEW" "$LASTPID"
state "$OLD"
state "$NEW"
go_hog new-tail 120
go_hog old-tail 120
