package vmtest

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// hostLoad is the highest 1-minute load average of the host seen while
// the guests ran. Under TCG a guest's vCPU is one host thread: on an
// overcommitted host it is descheduled for a second or more at random,
// which a heartbeat inside the guest cannot tell from thrashing. The
// pressure checks read this to know which heartbeat bound applies.
type hostLoad struct {
	mu  sync.Mutex
	max float64
}

// watchHostLoad samples path (/proc/loadavg's format) every interval
// until ctx ends.
func watchHostLoad(ctx context.Context, path string, interval time.Duration) *hostLoad {
	h := &hostLoad{}
	sample := func() {
		b, err := os.ReadFile(path)
		if err != nil {
			return
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return
		}
		h.mu.Lock()
		h.max = max(h.max, v)
		h.mu.Unlock()
	}
	sample()
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				sample()
			}
		}
	}()
	return h
}

// Max is the highest load average seen so far; 0 when none could be read.
func (h *hostLoad) Max() float64 {
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.max
}
