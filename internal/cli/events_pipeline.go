package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"podwarden/internal/kmsg"
	"podwarden/internal/oomreport"
)

// recordBatch is how many records the decoder hands on at once: enough to
// make channel operations rare, small enough (~130 KiB) to keep memory
// flat.
const recordBatch = 1024

// pipelineDepth bounds the batches in flight between two stages.
const pipelineDepth = 4

// reportWriter formats and writes one report; it is the last stage.
type reportWriter func(r *oomreport.Report) error

// fileResult is what the assembling stage found that is not a report.
type fileResult struct {
	strays  []oomreport.Stray
	nStrays int
}

// pipeFile turns a saved kernel log into events in three stages, each on
// its own goroutine: decode, assemble, format and write. Each is about a
// third of the work on a report-dense log, so on two cores a file parses
// about twice as fast as in one loop; bounded channels of batches keep
// memory flat in the input size. A read error ends the input: the open
// report is still written, then the error is returned.
func pipeFile(ctx context.Context, dec *kmsg.Decoder, write reportWriter) (fileResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	recs := make(chan []kmsg.Record, pipelineDepth)
	// free returns record batches to the decoder: a fresh 130 KiB batch
	// per 1024 lines was most of what the pipeline allocated.
	free := make(chan []kmsg.Record, pipelineDepth+2)
	reps := make(chan []oomreport.Report, pipelineDepth)
	freeReps := make(chan []oomreport.Report, pipelineDepth+2)
	var readErr error
	var res fileResult
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(recs)
		readErr = decodeBatches(ctx, dec, free, recs)
	}()
	go func() {
		defer wg.Done()
		defer close(reps)
		res = assembleBatches(ctx, recs, free, reps, freeReps)
	}()
	var werr error
	for batch := range reps {
		for i := range batch {
			if werr == nil {
				werr = write(&batch[i])
			}
		}
		if werr != nil {
			// Stop the other stages; keep draining so they can exit.
			cancel()
		}
		clear(batch) // let the reports' maps and slices go
		select {
		case freeReps <- batch[:0]:
		default:
		}
	}
	wg.Wait()
	if werr != nil {
		return res, werr
	}
	if readErr != nil {
		return res, fmt.Errorf("reading kernel log: %w", readErr)
	}
	return res, nil
}

// decodeBatches sends the records of dec in batches until the input ends
// or ctx is done; it returns the read error, nil at io.EOF.
func decodeBatches(ctx context.Context, dec *kmsg.Decoder, free <-chan []kmsg.Record, out chan<- []kmsg.Record) error {
	for {
		var b []kmsg.Record
		select {
		case b = <-free:
			b = b[:0]
		default:
			b = make([]kmsg.Record, 0, recordBatch)
		}
		var err error
		for len(b) < cap(b) {
			var r kmsg.Record
			if r, err = dec.Next(); err != nil {
				break
			}
			b = append(b, r)
		}
		if len(b) > 0 {
			select {
			case out <- b:
			case <-ctx.Done():
				return nil
			}
		}
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return err
		}
	}
}

// assembleBatches turns record batches into report batches, recycling
// each record batch once it is read and report batches the writer is done
// with, and flushes the open report when the records end. It returns the
// strays.
func assembleBatches(ctx context.Context, in <-chan []kmsg.Record, free chan<- []kmsg.Record,
	out chan<- []oomreport.Report, freeReps <-chan []oomreport.Report) fileResult {
	a := oomreport.NewAssembler()
	send := func(reps []oomreport.Report) bool {
		if len(reps) == 0 {
			return true
		}
		select {
		case out <- reps:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for b := range in {
		var reps []oomreport.Report
		select {
		case reps = <-freeReps:
		default:
		}
		for i := range b {
			reps = append(reps, a.Add(b[i])...)
		}
		select {
		case free <- b:
		default:
		}
		if !send(reps) {
			// Drain so the decoder is not left blocked on a send.
			for range in {
			}
			return strays(a)
		}
	}
	send(a.Flush())
	return strays(a)
}

func strays(a *oomreport.Assembler) fileResult {
	s, n := a.Strays()
	return fileResult{strays: s, nStrays: n}
}
