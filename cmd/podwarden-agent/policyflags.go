package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"podwarden/internal/policy"
)

// policyFlags are the policy file and the flags that override it; agent and
// nri apply the same policy and take them the same way.
type policyFlags struct {
	config   string
	adj      int
	oomGroup string
}

func (f *policyFlags) register(fl *pflag.FlagSet, adjHelp string) {
	fl.StringVar(&f.config, "config", "", "policy file (YAML); flags given on the command line override it")
	fl.IntVar(&f.adj, "oom-score-adj", 0, adjHelp+" (policy podOOMScoreAdj)")
	fl.StringVar(&f.oomGroup, "oom-group", "", "memory.oom.group policy: single, group or leave (policy oomGroup)")
}

// load reads the policy file (or the defaults) and applies the flags the
// user set. Callers validate the result after their own overrides.
func (f *policyFlags) load(fl *pflag.FlagSet) (policy.Config, error) {
	cfg := policy.Default()
	if f.config != "" {
		var err error
		if cfg, err = policy.Load(f.config); err != nil {
			return cfg, err
		}
	}
	if fl.Changed("oom-score-adj") {
		if f.adj < -1000 || f.adj > 1000 {
			return cfg, fmt.Errorf("--oom-score-adj %d: must be between -1000 and 1000", f.adj)
		}
		cfg.PodOOMScoreAdj = f.adj
	}
	if fl.Changed("oom-group") {
		m, err := policy.ParseMode(f.oomGroup)
		if err != nil {
			return cfg, fmt.Errorf("--oom-group: %w", err)
		}
		cfg.OOMGroup = m
	}
	return cfg, nil
}
