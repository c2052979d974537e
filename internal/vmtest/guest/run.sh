# run.sh SCENARIO MODE: runs one scenario in its own shell so that its
# variables and background jobs stay out of /init, then reports every
# process it started and removes what it left behind.
# A plan entry "scenario/mode" is a cell: the scenario in a mode of its own
# (the pressure scenarios run kernel, earlyoom and podwarden in one boot).
S=$1
MODE=$2
SCENARIO=${S%%/*}
[ "$SCENARIO" != "$S" ] && MODE=${S#*/}
. /pw/lib.sh
: > /run/procs
. "/pw/scenarios/$SCENARIO.sh"
report
cleanup
