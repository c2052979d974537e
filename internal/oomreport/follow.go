package oomreport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"podwarden/internal/kmsg"
)

// Follow assembles the records next returns into reports and hands each
// batch to emit, until next fails or ctx ends (the open report is emitted
// first). With idle > 0, a report whose kill line has been seen is emitted
// once no record came for idle: the kernel prints group-kill and
// oom_reaper lines after the kill line, and nothing marks a report's end
// until the next one begins. It returns nil at io.EOF or when ctx ends,
// next's error wrapped, or emit's first error as it is.
func Follow(ctx context.Context, next func(context.Context) (kmsg.Record, error), idle time.Duration, emit func([]Report) error) error {
	a := NewAssembler()
	for {
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if idle > 0 && a.Pending() {
			rctx, cancel = context.WithTimeout(ctx, idle)
		}
		rec, err := next(rctx)
		cancel()
		switch {
		case err == nil:
			if err := emit(a.Add(rec)); err != nil {
				return err
			}
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			if err := emit(a.Flush()); err != nil {
				return err
			}
		case errors.Is(err, io.EOF), ctx.Err() != nil:
			return emit(a.Flush())
		default:
			_ = emit(a.Flush())
			return fmt.Errorf("reading kernel log: %w", err)
		}
	}
}
