# renamed-prctl: renamed-hog's notebook pod, but the hog runs from a file
# with a plain name (worker) and renames itself (issue 19, item 1): comm
# jupyter-lab by prctl(PR_SET_NAME), the very name of the pod's server
# beside it, and argv[0] sshd. (renamed-hog covers a file named systemd.)
# The hog ends; the real server, the flat kernel and the init live.
. /pw/pressure.sh
node_standins
POD=/kubepods/pod3b8e0d2f-6c4a-4f9b-8d7e-2a3f4e5d6c7b/3b8e0d2f6c4a4f9b8d7e2a3f4e5d6c7b3b8e0d2f6c4a4f9b8d7e2a3f4e5d6c7b
mkcg "$POD" 1
dspawn app init "$POD" -997 idle -rss 2
dspawn jupyter-lab server "$POD" -997 idle -rss 60
dspawn python3 kernel "$POD" -997 idle -rss 120
DARGV0=sshd
dhog worker "$POD" -997 -rate 60 -comm jupyter-lab
start_tool
protect_pods "$POD"
settle
watch_start
go_pressure worker 120
finish
