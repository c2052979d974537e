package agent

// TargetSnapshot returns the targets as of their last change. Unlike
// Targets it is safe to call from any goroutine: the pressure engine
// (internal/preempt) reads it from its own.
func (a *Agent) TargetSnapshot() []Target {
	if p := a.snap.Load(); p != nil {
		return *p
	}
	return nil
}

// publishTargets makes the current targets visible to TargetSnapshot;
// called by the loop wherever the set changes.
func (a *Agent) publishTargets() {
	ts := make([]Target, 0, len(a.targets))
	for _, cg := range sortedKeys(a.targets) {
		t := *a.targets[cg]
		t.st = nil // the loop's own state stays with the loop
		ts = append(ts, t)
	}
	a.snap.Store(&ts)
	a.m.setLivePods(ts)
}
