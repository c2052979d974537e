// Package procfs reads process information from a proc filesystem mounted at
// any root.
//
// It reads what the OOM killer weighs (resident memory, swap, page tables,
// oom_score and oom_score_adj) and where a process sits (cgroup, parent),
// for every process on a node, fast enough that listing 5,000 processes
// takes a fraction of what ps(1) needs: a caller names the Fields it wants
// and Scan opens only the files those fields live in, reusing one buffer per
// worker.
//
// The root is a value, not a global, so tests point an FS at a fixture tree
// under testdata/ and a containerised agent at the host's /proc mounted
// elsewhere.
//
// Processes come and go while they are read. A process that exits mid-scan
// is skipped; Read reports it with an error that matches fs.ErrNotExist.
// Anything else that cannot be read or parsed is an error naming the file.
package procfs
