# cache-65-late: 65% of memory held flat beside the churn of cache-60 and
# cache-70, but the holder filled after the tool had seen the pod, and
# held 10 s before the churn began (issue 19, item 4: the engine once
# ended such a holder for having "grown" in the last 30 s). 65%, not 70%:
# filling 70% alone takes this guest below minAvailable (10%) while the
# holder is still growing, where ending it is what any early tool does
# (a 70% fill looks like a fast hog until it stops); at 65% the fill ends
# above it, and only the churn beside a flat holder can take the node
# short. Nothing may die.
. /pw/pressure.sh
cache_churn 65 late
