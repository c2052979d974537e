# cpython: a notebook pod whose kernel is a real CPython (Debian's
# python3.11 on the disk) running guest/notebook.py: its cell grows a list
# of 1 MiB bytes objects 30 MiB/s. SIGINT raises KeyboardInterrupt in the
# cell, whose except clause drops the list; the kernel carries on with its
# variables (issue 19: the session survives). After the episode (the
# kernel dead, or interrupted and 12 s more for any later signal) it is
# asked for its state (SIGUSR1), which it writes to its mark file.
. /pw/pressure.sh
node_standins
POD=/kubepods/pod5f6a7b8c-9d0e-4f1a-8b2c-3d4e5f6a7b8c/5f6a7b8c9d0e4f1a8b2c3d4e5f6a7b8c5f6a7b8c9d0e4f1a8b2c3d4e5f6a7b8c
mkcg "$POD" 1
dspawn jupyter-lab server "$POD" -997 idle -rss 60
mkfifo /run/go-python3
DFILE=/disk/usr/bin/python3.11
dspawn python3 hog "$POD" -997 -I -S -u /pw/notebook.py /run/go-python3 /run/mark-python3 30
start_tool
protect_pods "$POD"
settle
watch_start
go_wait python3 180 interrupted
py=$(pidof_name python3)
if alive "$py"; then
	# Long past the ladder's SIGINT grace (2 s) and SIGTERM's (3 s).
	sleep 12
	kill -USR1 "$py"
	i=0
	while ! grep -q '^state' /run/mark-python3 && [ $i -lt 300 ]; do usleep 100000; i=$((i + 1)); done
fi
sleep 2
check "python state" "$(grep '^state' /run/mark-python3 | tail -1)"
check "python interrupted" "$(grep '^interrupted' /run/mark-python3 | tail -1)"
finish
