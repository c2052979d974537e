package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"podwarden/internal/kubeevent"
	"podwarden/internal/policy"
)

// policyFlags are the policy file and the flags that override it; agent and
// nri apply the same policy and take them the same way.
type policyFlags struct {
	config   string
	adj      int
	oomGroup string
	ownNS    string
}

func (f *policyFlags) register(fl *pflag.FlagSet, adjHelp string) {
	fl.StringVar(&f.config, "config", "", "policy file (YAML); flags given on the command line override it")
	fl.IntVar(&f.adj, "oom-score-adj", 0, adjHelp+" (policy podOOMScoreAdj)")
	fl.StringVar(&f.oomGroup, "oom-group", "", "memory.oom.group policy: single, group or leave (policy oomGroup)")
	fl.StringVar(&f.ownNS, "agent-namespace", "", "the agent's own namespace, whose pods are never targets (default $POD_NAMESPACE, else the service account's namespace file)")
}

// namespace is the agent's own namespace: the flag, else $POD_NAMESPACE
// (the chart sets it from the downward API), else the namespace file the
// kubelet mounts with the service account token, else "" (not in a pod).
func (f *policyFlags) namespace(fl *pflag.FlagSet) string {
	if fl.Changed("agent-namespace") {
		return f.ownNS
	}
	return ownNamespace(os.Getenv, kubeevent.ServiceAccountDir)
}

func ownNamespace(getenv func(string) string, saDir string) string {
	if ns := getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	b, err := os.ReadFile(filepath.Join(saDir, "namespace"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// excludeOwn makes namespace ns (the agent's) excluded whatever the policy
// file says: raising the agent's own pods would make the agent the OOM
// killer's first choice on the node it protects.
func excludeOwn(cfg *policy.Config, ns string) {
	if ns == "" {
		return
	}
	cfg.Selector.Namespaces = slices.DeleteFunc(slices.Clone(cfg.Selector.Namespaces), func(n string) bool { return n == ns })
	if !slices.Contains(cfg.Selector.ExcludeNamespaces, ns) {
		cfg.Selector.ExcludeNamespaces = append(slices.Clone(cfg.Selector.ExcludeNamespaces), ns)
	}
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
	excludeOwn(&cfg, f.namespace(fl))
	return cfg, nil
}
