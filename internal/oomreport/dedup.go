package oomreport

// dedupWindow is how many kills a Dedup remembers: enough for a dmesg and
// a journal copy of a busy node's log, and flat memory on any input.
const dedupWindow = 4096

// Dedup drops reports that repeat one already seen, as when the same
// kernel log is pasted twice (dmesg, then the journal or kern.log with the
// same messages). A kill is known by its first victim's kill line: pid,
// comm, uid and sizes. The copies may differ in carrier and time
// base (the journal prints wall-clock time, dmesg time since boot), so
// times only tell two kills apart when both copies have a time since
// boot and it differs: a copy of a kernel message has the same one.
type Dedup struct {
	seen  map[killKey]firstSeen
	order []killKey // ring of the keys in seen, oldest at next
	next  int
}

// killKey holds the comm as a hash: a copy of the string per report was
// most of what deduplication cost, and with the pid, uid and sizes also
// equal a collision is not a concern.
type killKey struct {
	pid, uid                        int
	comm                            uint64
	totalVM, anon, file, shmem, pgt int64
}

type firstSeen struct {
	line int
	mono float64
}

// Repeat reports whether r repeats a report seen before, and the line
// that one started on. r is remembered when it is new.
func (d *Dedup) Repeat(r *Report) (line int, repeat bool) {
	if len(r.Victims) == 0 || r.Killer != KillerKernel {
		// Other killers' lines repeat by design (earlyoom's SIGTERM, then
		// SIGKILL, to the same process).
		return 0, false
	}
	v := &r.Victims[0]
	k := killKey{pid: v.PID, uid: v.UID, comm: fnv64(v.Comm), totalVM: v.TotalVMKB, anon: v.AnonRSSKB,
		file: v.FileRSSKB, shmem: v.ShmemRSSKB, pgt: v.PgtablesKB}
	first, known := d.seen[k]
	if known && (first.mono == 0 || r.Monotonic == 0 || abs(first.mono-r.Monotonic) < 1e-6) {
		return first.line, true
	}
	if d.seen == nil {
		d.seen = make(map[killKey]firstSeen)
	}
	switch {
	case known:
		// The same kill line at another time: a new kill, remembered
		// in the place of the old one.
	case len(d.order) < dedupWindow:
		d.order = append(d.order, k)
	default:
		delete(d.seen, d.order[d.next])
		d.order[d.next] = k
		d.next = (d.next + 1) % dedupWindow
	}
	d.seen[k] = firstSeen{line: r.Line, mono: r.Monotonic}
	return 0, false
}

// fnv64 is FNV-1a, inline: hash/fnv would allocate per call.
func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}
