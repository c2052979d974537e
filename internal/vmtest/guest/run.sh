# run.sh SCENARIO MODE: runs one scenario in its own shell so that its
# variables and background jobs stay out of /init, then reports every
# process it started and removes what it left behind.
S=$1
MODE=$2
. /pw/lib.sh
: > /run/procs
. "/pw/scenarios/$S.sh"
report
cleanup
