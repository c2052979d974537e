//go:build unix

package lineage

import "syscall"

// openFlags: a FIFO opened with O_NONBLOCK does not wait for a writer.
const openFlags = syscall.O_NONBLOCK
