package vmtest

import (
	"fmt"
	"io"
	"os"
)

// Archive is an initramfs file tree for harnesses other than this
// package's scenarios (internal/nodetest packs a whole Kubernetes node into
// one). It writes the same reproducible newc stream as the scenario images.
type Archive struct{ im *image }

// NewArchive returns an empty tree.
func NewArchive() *Archive { return &Archive{im: newImage()} }

// Add puts a regular file at name (no leading slash), creating parents.
func (a *Archive) Add(name string, perm uint32, data []byte) { a.im.add(name, perm, data) }

// AddFile adds the host file src at name with src's permission bits.
func (a *Archive) AddFile(name, src string) error {
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("adding %s: %w", name, err)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("adding %s: %w", name, err)
	}
	a.im.add(name, uint32(st.Mode().Perm()), b)
	return nil
}

// Dir creates a directory and its parents.
func (a *Archive) Dir(name string) { a.im.mkdirAll(name) }

// Chardev adds a device node (the kernel needs dev/console before init
// runs).
func (a *Archive) Chardev(name string, major, minor uint32) { a.im.chardev(name, major, minor) }

// WriteTo writes the uncompressed newc archive.
func (a *Archive) WriteTo(w io.Writer) (int64, error) { return a.im.writeTo(w) }
