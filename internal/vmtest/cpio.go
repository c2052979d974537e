package vmtest

import (
	"bytes"
	"fmt"
	"io"
	"sort"
)

// cpioWriter writes the "newc" (SVR4, no CRC) format the kernel unpacks
// into its rootfs. Writing it here keeps the suite free of a cpio binary
// and makes the image byte-for-byte reproducible (fixed inode numbers and
// times).
type cpioWriter struct {
	w   io.Writer
	ino uint32
	n   int64
	err error
}

func (c *cpioWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.err = err
}

// pad aligns the stream to 4 bytes, as newc requires after names and data.
func (c *cpioWriter) pad() {
	if r := c.n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

func (c *cpioWriter) entry(name string, mode uint32, data []byte, rdevMajor, rdevMinor uint32) {
	c.ino++
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write(append([]byte(name), 0))
	c.pad()
	c.write(data)
	c.pad()
}

const (
	modeDir  = 0o040000
	modeFile = 0o100000
	modeChar = 0o020000
)

// image is an in-memory file tree destined for an initramfs.
type image struct {
	dirs  map[string]bool
	files map[string]imageFile
}

type imageFile struct {
	mode  uint32
	data  []byte
	major uint32 // device numbers when mode is modeChar
	minor uint32
}

func newImage() *image {
	return &image{dirs: map[string]bool{}, files: map[string]imageFile{}}
}

func (im *image) mkdirAll(dir string) {
	for d := dir; d != "." && d != "/" && d != ""; d = parent(d) {
		im.dirs[d] = true
	}
}

func parent(p string) string {
	i := bytes.LastIndexByte([]byte(p), '/')
	if i <= 0 {
		return "."
	}
	return p[:i]
}

// add puts a regular file at name (no leading slash), creating parents.
func (im *image) add(name string, perm uint32, data []byte) {
	im.mkdirAll(parent(name))
	im.files[name] = imageFile{mode: modeFile | perm, data: data}
}

// chardev adds a device node. The kernel opens /dev/console for init's
// stdio before init runs, so the image must carry it: devtmpfs is mounted
// only later, by init itself.
func (im *image) chardev(name string, major, minor uint32) {
	im.mkdirAll(parent(name))
	im.files[name] = imageFile{mode: modeChar | 0o600, major: major, minor: minor}
}

// writeTo emits directories first (sorted, so parents precede children),
// then files, then the trailer.
func (im *image) writeTo(w io.Writer) (int64, error) {
	c := &cpioWriter{w: w}
	dirs := make([]string, 0, len(im.dirs))
	for d := range im.dirs {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	for _, d := range dirs {
		c.entry(d, modeDir|0o755, nil, 0, 0)
	}
	names := make([]string, 0, len(im.files))
	for n := range im.files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := im.files[n]
		c.entry(n, f.mode, f.data, f.major, f.minor)
	}
	c.entry("TRAILER!!!", 0, nil, 0, 0)
	if c.err != nil {
		return c.n, fmt.Errorf("writing cpio: %w", c.err)
	}
	return c.n, nil
}
