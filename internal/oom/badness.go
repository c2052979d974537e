package oom

import "math"

// PageSize is the page size the kernel counts RSS and totalpages in. x86-64
// and arm64 (4K kernels) use 4096; /proc/PID/status reports kB, so a wrong
// value here would only scale every score the same way.
const PageSize = 4096

// Adjustment bounds from include/uapi/linux/oom.h.
const (
	AdjMin = -1000 // OOM_SCORE_ADJ_MIN: never killed
	AdjMax = 1000
)

// Task is a process as the OOM killer sees it.
type Task struct {
	PID  int
	Comm string
	// Adj is /proc/PID/oom_score_adj.
	Adj int
	// RSSPages is anon + file + shmem resident pages (get_mm_rss).
	RSSPages uint64
	// SwapPages is MM_SWAPENTS.
	SwapPages uint64
	// PgTableBytes is mm_pgtables_bytes (VmPTE in status, in bytes).
	PgTableBytes uint64
	// Kernel marks kernel threads, which have no mm and are never chosen.
	Kernel bool
	// Cgroup is the task's memory cgroup path ("/" for the root).
	Cgroup string
	// Pod is the UID of the Kubernetes pod the task belongs to, "" for a
	// host process. Only the verdict uses it.
	Pod string
}

// Pages returns the memory the badness heuristic charges to t, in pages.
func (t Task) Pages() uint64 { return t.RSSPages + t.SwapPages + t.PgTableBytes/PageSize }

// Unkillable reports whether oom_badness returns LONG_MIN for the task:
// global init, kernel threads and tasks at OOM_SCORE_ADJ_MIN.
func (t Task) Unkillable() bool {
	return t.PID == 1 || t.Kernel || t.Adj <= AdjMin
}

// Badness returns the kernel's points for t when totalPages is the memory
// the OOM domain may use (RAM+swap for a node OOM, the memcg limit for a
// cgroup OOM). ok is false where the kernel returns LONG_MIN.
//
//	points = rss + swap + pgtables/PAGE_SIZE + adj * (totalpages / 1000)
func Badness(t Task, totalPages uint64) (points int64, ok bool) {
	if t.Unkillable() {
		return math.MinInt64, false
	}
	points = int64(t.Pages())
	adj := int64(clampAdj(t.Adj)) * int64(totalPages/1000)
	return points + adj, true
}

// Score is what /proc/PID/oom_score shows on kernels >= 5.9
// (fs/proc/base.c proc_oom_score): totalPages is RAM + swap pages.
//
//	score = (1000 + badness*1000/totalpages) * 2/3, 0 when unkillable
func Score(t Task, totalPages uint64) int {
	b, ok := Badness(t, totalPages)
	if !ok || totalPages == 0 {
		return 0
	}
	// C division truncates toward zero, as Go's does.
	points := (1000 + b*1000/int64(totalPages)) * 2 / 3
	if points < 0 {
		// The kernel stores this in an unsigned long; adj >= -999 keeps it
		// positive in practice, but never print a negative score.
		return 0
	}
	return int(points)
}

func clampAdj(a int) int {
	return max(AdjMin, min(AdjMax, a))
}
