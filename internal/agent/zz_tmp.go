package agent

import (
	"context"
	"time"
)

// Run reconciles every Policy.Interval until ctx ends. (Event-driven
// protection lands with the process connector and cgroup watcher.)
func (a *Agent) Run(ctx context.Context) error {
	a.protectSelf()
	t := time.NewTicker(a.cfg.Policy.Interval)
	defer t.Stop()
	for {
		if _, err := a.Reconcile(ctx); err != nil {
			a.log.Error("reconcile", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
