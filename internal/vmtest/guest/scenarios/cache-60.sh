# cache-60: 60% of memory held flat since before the tool started, beside
# page-cache churn larger than the node's memory (issue 19, item 4;
# cache_churn in pressure.sh). Nothing may die: no kill frees page cache.
. /pw/pressure.sh
cache_churn 60 before
