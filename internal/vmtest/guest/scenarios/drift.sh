# drift: after the agent protected a container, something (an in-place
# resize resending the CRI Unified map, a systemd daemon-reload, a new
# exec) puts memory.oom.group=1 and -997 back. The agent must repair it
# before the hog runs.
CTR=/kubepods/pod3c4d5e6f-7081-4920-a3b4-c5d6e7f80912/cccc000000000000000000000000000000000000000000000000000000000003
mkcg "$CTR" 1 48M
shipped_pod "$CTR"
echo 1 > "$CG$CTR/memory.oom.group"
for p in $A $B $H; do echo -997 > "/proc/$p/oom_score_adj"; done
check "drift oom.group" "$(cat "$CG$CTR/memory.oom.group")"
protect_wait "$CTR" "$A" "$B" "$H"
state "$CTR"
go_hog tail 120
