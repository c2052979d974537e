# jupyter-pod.sh: pid 1 of the notebook pod (scenarios/jupyter.sh). It
# starts the server and the kernel and waits, as tini does.
# /proc is the node's, so /proc/self/stat names this shell by its node pid
# (read by the shell itself: a $(...) would name a subshell).
read -r me _ < /proc/self/stat
echo "tini $me init $CGP" >> /run/procs
sh -c 'read -r p _ < /proc/self/stat; echo "jupyter-lab $p server $CGP" >> /run/procs
exec /disk/bin/jupyter-lab idle -rss 60' &
sh -c 'read -r p _ < /proc/self/stat; echo "python3 $p hog $CGP" >> /run/procs
exec /disk/bin/python3 hog -go /run/go-python3 -mark /run/mark-python3 -rate 30 -on-int ignore' &
wait
