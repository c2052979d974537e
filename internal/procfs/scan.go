package procfs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

const (
	// direntBuf is the getdents64 buffer: 5,000 processes list in about
	// 160 KiB of dirents, so three calls.
	direntBuf = 64 << 10
	// maxChunk is how many processes a worker claims at a time: large
	// enough that the shared counter is touched rarely, small enough that
	// two workers finish together.
	maxChunk = 64
	// perWorker is the fewest processes worth another goroutine.
	perWorker = 256
	// maxWorkers caps the pool: past a few cores the kernel's locks on
	// the pid table, not the cores, bound the rate.
	maxWorkers = 8
)

// Scan reads the given fields of every process (thread-group leaders, as
// /proc lists them; not threads), sorted by PID. Processes that exit while
// they are read are left out. Any other failure to read or parse a file
// ends the scan with an error naming the file.
func (fs FS) Scan(ctx context.Context, fields Field) ([]Proc, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	root, err := openDir(fs.root)
	if err != nil {
		return nil, fmt.Errorf("scan processes: open %s: %w", fs.root, err)
	}
	defer unix.Close(root)
	pids, err := listPIDs(root)
	if err != nil {
		return nil, fmt.Errorf("scan processes: list %s: %w", fs.root, err)
	}
	slices.Sort(pids)

	procs := make([]Proc, len(pids))
	if err := fs.readAll(ctx, root, pids, procs, fields); err != nil {
		return nil, err
	}
	// A zero PID marks a process that exited mid-scan.
	return slices.DeleteFunc(procs, func(p Proc) bool { return p.PID == 0 }), nil
}

// readAll fills procs[i] with process pids[i], from a pool of workers that
// claim chunks of the list in order.
func (fs FS) readAll(ctx context.Context, root int, pids []int, procs []Proc, fields Field) error {
	workers := fs.workers
	if workers == 0 {
		workers = min(runtime.GOMAXPROCS(0), maxWorkers, len(pids)/perWorker)
	}
	workers = max(1, min(workers, len(pids)))
	// Several chunks per worker even for short lists, so that a worker
	// count set with WithWorkers really runs in parallel.
	chunk := max(1, min(maxChunk, len(pids)/(4*workers)))

	var (
		next   atomic.Int64
		failed atomic.Bool
		// errAt is the index of the lowest failing pid, so the error
		// does not depend on which worker got there first.
		mu    sync.Mutex
		errAt = len(pids)
		first error
	)
	fail := func(i int, err error) {
		mu.Lock()
		if i < errAt {
			errAt, first = i, err
		}
		mu.Unlock()
		failed.Store(true)
	}
	work := func() {
		r := newReader(fs)
		for !failed.Load() {
			if err := ctx.Err(); err != nil {
				fail(-1, err)
				return
			}
			start := int(next.Add(int64(chunk))) - chunk
			if start >= len(pids) {
				return
			}
			for i := start; i < min(start+chunk, len(pids)); i++ {
				if fields == 0 {
					// Listed is all the caller asked for.
					procs[i] = Proc{PID: pids[i]}
					continue
				}
				p, err := r.readPID(root, pids[i], fields)
				if err != nil {
					var g *GoneError
					if errors.As(err, &g) {
						continue
					}
					fail(i, err)
					return
				}
				procs[i] = p
			}
		}
	}
	if workers == 1 {
		work()
	} else {
		var wg sync.WaitGroup
		for range workers {
			wg.Go(work)
		}
		wg.Wait()
	}
	if first != nil {
		return fmt.Errorf("scan processes: %w", first)
	}
	return nil
}

// listPIDs returns the numeric directory names of the open directory fd,
// read with getdents64 in large batches; os.ReadDir would allocate a
// DirEntry and a string per entry.
func listPIDs(fd int) ([]int, error) {
	buf := make([]byte, direntBuf)
	pids := make([]int, 0, 1024)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("getdents: %w", err)
		}
		if n <= 0 {
			return pids, nil
		}
		if pids, err = appendPIDs(pids, buf[:n]); err != nil {
			return nil, err
		}
	}
}

// appendPIDs parses linux_dirent64 records (u64 ino, s64 off, u16 reclen,
// u8 type, NUL-terminated name) and appends the names that are positive
// decimal numbers of directories.
func appendPIDs(pids []int, b []byte) ([]int, error) {
	const nameOff = 19
	for len(b) > 0 {
		if len(b) < nameOff {
			return nil, fmt.Errorf("short dirent (%d bytes)", len(b))
		}
		reclen := int(binary.NativeEndian.Uint16(b[16:18]))
		if reclen <= nameOff || reclen > len(b) {
			return nil, fmt.Errorf("dirent length %d of %d bytes", reclen, len(b))
		}
		typ, name := b[18], b[nameOff:reclen]
		b = b[reclen:]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		// Fixture trees on file systems without d_type give DT_UNKNOWN;
		// a non-directory there fails later with ENOTDIR.
		if typ != unix.DT_DIR && typ != unix.DT_UNKNOWN {
			continue
		}
		if len(name) == 0 || name[0] < '1' || name[0] > '9' {
			continue
		}
		if pid, ok := atoi(name); ok {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
