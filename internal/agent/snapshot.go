package agent

// targetSnapshot is one published target set. gen numbers the
// publications, so a reader can tell a new set from the one it has.
type targetSnapshot struct {
	ts  []Target
	gen uint64
}

// TargetSnapshot returns the targets as of their last change and that
// change's generation: 0 before the first, different with every one. A
// reader that keeps something built from ts (the pressure engine's view)
// builds it again only when gen changes. Unlike Targets it is safe to call
// from any goroutine: the pressure engine (internal/preempt) reads it from
// its own. ts is shared: callers must not change it.
func (a *Agent) TargetSnapshot() (ts []Target, gen uint64) {
	if p := a.snap.Load(); p != nil {
		return p.ts, p.gen
	}
	return nil, 0
}

// publishTargets makes the current targets visible to TargetSnapshot;
// called by the loop (the only writer) wherever the set changes.
func (a *Agent) publishTargets() {
	ts := make([]Target, 0, len(a.targets))
	for _, cg := range sortedKeys(a.targets) {
		t := *a.targets[cg]
		t.st = nil // the loop's own state stays with the loop
		ts = append(ts, t)
	}
	gen := uint64(1)
	if p := a.snap.Load(); p != nil {
		gen = p.gen + 1
	}
	a.snap.Store(&targetSnapshot{ts: ts, gen: gen})
	a.m.setLivePods(ts)
}
