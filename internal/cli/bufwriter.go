package cli

import (
	"bufio"
	"io"
)

// newBufWriter batches output: a tree of thousands of processes would
// otherwise cost one write(2) per line.
func NewBufWriter(w io.Writer) *bufio.Writer { return bufio.NewWriterSize(w, 64<<10) }
