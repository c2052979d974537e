# pidns-pod.sh: pid 1 of the pod of scenarios/pidns-hog.sh, as the runtime
# starts it. It starts a server, and a hog as pid 1 of a PID namespace of
# its own (unshare -p -f, from inside the container), and waits.
# /proc is the node's, so /proc/self/stat names each shell by its node pid.
if [ "$1" = hog ]; then
	read -r p _ < /proc/self/stat
	echo "tail $p hog $CGP" >> /run/procs
	exec /disk/bin/tail hog -go /run/go-tail -mark /run/mark-tail -rate 40
fi
read -r me _ < /proc/self/stat
echo "tini $me init $CGP" >> /run/procs
sh -c 'read -r p _ < /proc/self/stat; echo "jupyter-lab $p server $CGP" >> /run/procs
exec /disk/bin/jupyter-lab idle -rss 60' &
sh -c 'read -r p _ < /proc/self/stat; echo "unshare $p wrapper $CGP" >> /run/procs
exec unshare -p -f sh /pw/pidns-pod.sh hog' &
wait
