package preempt

import (
	"fmt"
	"time"

	"podwarden/internal/kubeevent"
	"podwarden/internal/oom"
)

// What fired an episode is told with it (fired_by in the log, the end of
// the Event's why): what woke the engine, a PSI trigger (which file) or
// its own poll, and which rule put the scope in danger. Without it a user
// cannot tell a PSI-driven kill from one on headroom alone, nor whether
// the node's trigger works at all (it did not on AppArmor nodes).

// noteFired records that owner's PSI trigger woke the loop: "node" for the
// node's, a target cgroup for a container's.
func (e *Engine) noteFired(owner string, now time.Time) {
	if owner == nodeKey {
		e.nodeFired = now
		return
	}
	if st := e.targets[owner]; st != nil {
		st.fired = now
	}
}

// firedOf is what fired ep, worked out once, when ep starts (step calls
// it for every new episode; tell for those told at once).
func (e *Engine) firedOf(ep *episode) string {
	if ep.firedBy == "" {
		ep.firedBy = e.wokenBy(ep) + "; " + ep.at.ruleString()
	}
	return ep.firedBy
}

// wokenBy says whether ep's scope's PSI trigger fired lately (within two
// trigger windows of the start: the stall judged is the last window's) or
// the engine found the danger on its own poll.
func (e *Engine) wokenBy(ep *episode) string {
	file, fired := e.nodeTrigFile, e.nodeFired
	if ep.scope == kubeevent.ScopeContainer {
		file, fired = "", time.Time{}
		if st := e.targets[ep.cg]; st != nil {
			file, fired = st.trigFile, st.fired
		}
	}
	switch {
	case file != "" && !fired.IsZero() && !fired.After(ep.start) && ep.start.Sub(fired) <= 2*e.spec.Window:
		return "psi trigger on " + file
	case file != "":
		return "poll (psi trigger on " + file + " silent)"
	}
	return "poll (no psi trigger)"
}

// ruleString names the rule that put the scope in danger, with its
// figures.
func (hl health) ruleString() string {
	avail := oom.HumanBytes(hl.avail)
	switch hl.by {
	case ruleCritical:
		return fmt.Sprintf("critical: available %s below criticalAvailable %s", avail, oom.HumanBytes(hl.lv.Critical))
	case ruleMinPSI:
		return fmt.Sprintf("psi: available %s below minAvailable %s, tasks stalled %.0f%% of the window (bar %.0f%%)",
			avail, oom.HumanBytes(hl.lv.Min), hl.stall*100, hl.bar*100)
	case ruleMinDrop:
		return fmt.Sprintf("fast drop: available %s below minAvailable %s, fell %s in the last window (%.0f%% of the total counts as pressure)",
			avail, oom.HumanBytes(hl.lv.Min), oom.HumanBytes(hl.drop), fastDrop)
	case ruleMinFall:
		return fmt.Sprintf("falling without psi: available %s below minAvailable %s, fell %s in the last window",
			avail, oom.HumanBytes(hl.lv.Min), oom.HumanBytes(hl.drop))
	case ruleFastFall:
		return fmt.Sprintf("fast fall: available %s fell %s in the last window, criticalAvailable %s within %d windows at that pace",
			avail, oom.HumanBytes(hl.drop), oom.HumanBytes(hl.lv.Critical), runway)
	}
	return "not in danger"
}
