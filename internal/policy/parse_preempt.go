package policy

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// preempt parses the preempt mapping. Range checks that involve one key
// run here, with the key's line; the cross-key ones (thresholds in order,
// the ladder ending in SIGKILL) run on the result and point at the
// mapping that holds them.
func (p *parser) preempt(n *yaml.Node, pr *Preempt) {
	known := []string{"enabled", "dryRun", "pressure", "node", "container", "ladder", "mrelease", "cooldown",
		"growthWindow", "keepInit", "keep", "messageFile"}
	const f = "preempt"
	p.mapping(n, f, known, func(key string, v *yaml.Node) {
		kf := f + "." + key
		switch key {
		case "enabled":
			p.boolean(v, kf, &pr.Enabled)
		case "dryRun":
			p.boolean(v, kf, &pr.DryRun)
		case "mrelease":
			p.boolean(v, kf, &pr.Mrelease)
		case "keepInit":
			p.boolean(v, kf, &pr.KeepInit)
		case "pressure":
			if s, ok := p.str(v, kf); ok {
				t, err := ParsePSITrigger(s)
				if err != nil {
					p.check(v, kf, err)
					return
				}
				pr.Pressure = t
			}
		case "node":
			p.thresholds(v, kf, &pr.Node)
		case "container":
			p.thresholds(v, kf, &pr.Container)
		case "ladder":
			if l, ok := p.ladder(v, kf); ok {
				pr.Ladder = l
			}
		case "cooldown":
			p.duration(v, kf, func(d time.Duration) error { return checkDuration(d, minCooldown, maxCooldown) }, &pr.Cooldown)
		case "growthWindow":
			p.duration(v, kf, func(d time.Duration) error { return checkDuration(d, minGrowthWindow, maxGrowthWindow) }, &pr.GrowthWindow)
		case "keep":
			pr.Keep = p.keep(v, kf)
		case "messageFile":
			if v.Kind == yaml.ScalarNode && v.Value == "" {
				pr.MessageFile = "" // explicitly off
				return
			}
			if s, ok := p.str(v, kf); ok {
				p.check(v, kf, checkMessageFile(s))
				pr.MessageFile = s
			}
		}
	})
}

func (p *parser) thresholds(n *yaml.Node, field string, th *Thresholds) {
	known := []string{"minAvailable", "criticalAvailable", "releaseAvailable"}
	nodes := map[string]*yaml.Node{}
	p.mapping(n, field, known, func(key string, v *yaml.Node) {
		kf := field + "." + key
		s, ok := p.str(v, kf)
		if !ok {
			return
		}
		l, err := ParseLevel(s)
		if err != nil {
			p.check(v, kf, err)
			return
		}
		nodes[key] = v
		switch key {
		case "minAvailable":
			th.MinAvailable, th.MinAvailableBytes = l.Pct, l.Bytes
		case "criticalAvailable":
			th.CriticalAvailable, th.CriticalAvailableBytes = l.Pct, l.Bytes
		case "releaseAvailable":
			th.ReleaseAvailable, th.ReleaseAvailableBytes = l.Pct, l.Bytes
		}
	})
	// Ranges and order, at the line of the key given (or of the mapping,
	// when the value in question is a default); a key already reported
	// (it stayed at its default) is not reported again.
	th.check(func(key string, err error) {
		at := nodes[key]
		if at == nil {
			at = n
		}
		p.checkOnce(at, field+"."+key, err)
	})
}

// checkOnce is check, unless the field already has an error.
func (p *parser) checkOnce(n *yaml.Node, field string, err error) {
	for _, e := range p.errs {
		if e.(*Error).Field == field {
			return
		}
	}
	p.check(n, field, err)
}

func (p *parser) ladder(n *yaml.Node, field string) ([]Step, bool) {
	if n.Kind != yaml.SequenceNode {
		p.fail(n, field, "must be a list of steps (signal, grace)")
		return nil, false
	}
	before := len(p.errs)
	out := []Step{}
	for i, item := range n.Content {
		f := fmt.Sprintf("%s[%d]", field, i)
		if item.Kind != yaml.MappingNode {
			p.fail(item, f, "must be a mapping with signal and grace")
			continue
		}
		var st Step
		p.mapping(item, f, []string{"signal", "grace"}, func(key string, v *yaml.Node) {
			switch key {
			case "signal":
				st.Signal, _ = p.str(v, f+".signal")
			case "grace":
				p.duration(v, f+".grace", func(d time.Duration) error { return checkDuration(d, 0, maxGrace) }, &st.Grace)
			}
		})
		if st.Signal == "" {
			p.fail(item, f, "needs a signal")
		}
		out = append(out, st)
	}
	// Signal names and order, at the step in question.
	checkLadder(out, func(key string, err error) {
		at := n
		var i int
		if _, e := fmt.Sscanf(key, "ladder[%d]", &i); e == nil && i < len(n.Content) {
			at = n.Content[i]
		}
		p.checkOnce(at, "preempt."+key, err)
	})
	return out, len(p.errs) == before
}

func (p *parser) keep(n *yaml.Node, field string) []string {
	out := []string{}
	if isNull(n) {
		return out
	}
	if n.Kind != yaml.SequenceNode {
		p.fail(n, field, "must be a list of process name globs")
		return out
	}
	for i, item := range n.Content {
		f := fmt.Sprintf("%s[%d]", field, i)
		if s, ok := p.str(item, f); ok {
			p.check(item, f, checkKeep(s))
			out = append(out, s)
		}
	}
	return out
}
