package procfs

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	atFDCWD = unix.AT_FDCWD
	// maxFile bounds how far a read buffer grows. The largest proc file
	// read here is cmdline, capped by ARG_MAX (a few MiB); anything bigger
	// means the root is not a proc filesystem.
	maxFile = 16 << 20
	// openFlags: O_NOATIME is left out because proc ignores it and it
	// fails with EPERM on fixture files owned by another user.
	openFlags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOCTTY
)

// File names with the NUL terminator the openat system call wants, so
// opening them does not copy the name to the heap on every call.
const (
	nameStat        = "stat\x00"
	nameStatus      = "status\x00"
	nameCmdline     = "cmdline\x00"
	nameOOMScore    = "oom_score\x00"
	nameOOMScoreAdj = "oom_score_adj\x00"
	nameCgroup      = "cgroup\x00"
)

// reader reads the files of one process after another with one buffer. Each
// Scan worker owns one, so the hot loop allocates only the strings it keeps.
type reader struct {
	fs      FS
	buf     []byte
	dirName []byte
}

func newReader(fs FS) *reader {
	// 4 KiB holds every stat and status file; cmdline may grow it.
	return &reader{fs: fs, buf: make([]byte, 4096), dirName: make([]byte, 0, 24)}
}

// readers keeps the readers of single-process reads (Read, the pinned
// write). The agent reads a process on every fork and exec of the node: a
// fresh 4 KiB buffer each time was most of what it allocated (0.8 GB over
// a soak of 100,000 processes), which kept its heap, and so its RSS,
// above the size of its live data.
var readers = sync.Pool{New: func() any { return newReader(FS{}) }}

func getReader(fs FS) *reader {
	r := readers.Get().(*reader)
	r.fs = fs
	return r
}

// putReader returns r to the pool; parsed values never point into its
// buffer (they are copied out), so it may be reused at once. A buffer a
// long cmdline grew is dropped instead of kept.
func putReader(r *reader) {
	if cap(r.buf) > 4096 {
		return
	}
	r.fs = FS{}
	readers.Put(r)
}

// readPID opens the directory of pid under parent (a descriptor of the
// root) and reads fields from it. Opening the files relative to the
// directory pins the process: if the pid is reused mid-read, the old
// directory answers ENOENT/ESRCH instead of showing the new process.
func (r *reader) readPID(parent, pid int, fields Field) (Proc, error) {
	var dir int
	var err error
	if parent == atFDCWD {
		dir, err = openDir(r.fs.Path(pid, ""))
	} else {
		r.dirName = append(strconv.AppendInt(r.dirName[:0], int64(pid), 10), 0)
		dir, err = openat(parent, &r.dirName[0], openFlags|unix.O_DIRECTORY)
	}
	if err != nil {
		return Proc{}, r.fileErr(pid, "", "open", err)
	}
	p, err := r.readProc(dir, pid, fields)
	unix.Close(dir)
	return p, err
}

func (r *reader) readProc(dir, pid int, fields Field) (Proc, error) {
	p := Proc{PID: pid, Fields: fields}
	if fields&FieldStat != 0 {
		b, err := r.readAt(dir, pid, nameStat)
		if err != nil {
			return p, err
		}
		if err := parseStat(b, &p); err != nil {
			return p, &ParseError{Path: r.fs.Path(pid, "stat"), Err: err}
		}
		if p.PID != pid {
			return p, &ParseError{Path: r.fs.Path(pid, "stat"), Err: fmt.Errorf("pid %d in the file of process %d", p.PID, pid)}
		}
	}
	if fields&FieldStatus != 0 {
		b, err := r.readAt(dir, pid, nameStatus)
		if err != nil {
			return p, err
		}
		s, err := parseStatus(b)
		if err != nil {
			path := r.fs.Path(pid, "status")
			if errors.Is(err, errIncomplete) && (isDead(s.state) || isDead(p.State)) {
				return p, &GoneError{Path: path, Err: err}
			}
			return p, &ParseError{Path: path, Err: err}
		}
		s.apply(&p, fields&FieldStat != 0)
	}
	if fields&FieldCmdline != 0 {
		b, err := r.readAt(dir, pid, nameCmdline)
		if err != nil {
			return p, err
		}
		p.Cmdline = parseCmdline(b)
	}
	if fields&FieldOOMScore != 0 {
		v, err := r.readInt(dir, pid, nameOOMScore)
		if err != nil {
			return p, err
		}
		p.OOMScore = v
	}
	if fields&FieldOOMScoreAdj != 0 {
		v, err := r.readInt(dir, pid, nameOOMScoreAdj)
		if err != nil {
			return p, err
		}
		p.OOMScoreAdj = v
	}
	if fields&FieldCgroup != 0 {
		b, err := r.readAt(dir, pid, nameCgroup)
		if err != nil {
			return p, err
		}
		v2, v1, err := parseCgroup(b)
		if err != nil {
			return p, &ParseError{Path: r.fs.Path(pid, "cgroup"), Err: err}
		}
		p.Cgroup, p.CgroupV1Memory = v2, v1
	}
	return p, nil
}

// isDead reports the states of a task that has exited: zombie and dead.
func isDead(state byte) bool { return state == 'Z' || state == 'X' || state == 'x' }

func (r *reader) readInt(dir, pid int, name string) (int, error) {
	b, err := r.readAt(dir, pid, name)
	if err != nil {
		return 0, err
	}
	v, err := parseOneInt(b)
	if err != nil {
		return 0, &ParseError{Path: r.fs.Path(pid, trimNUL(name)), Err: err}
	}
	return v, nil
}

// readAt reads the NUL-terminated name under dir into r.buf and returns
// the filled part, valid until the next read.
func (r *reader) readAt(dir, pid int, name string) ([]byte, error) {
	fd, err := openat(dir, unsafe.StringData(name), openFlags)
	if err != nil {
		return nil, r.fileErr(pid, name, "open", err)
	}
	n := 0
	for {
		if n == len(r.buf) {
			if len(r.buf) >= maxFile {
				unix.Close(fd)
				return nil, r.fileErr(pid, name, "read", fmt.Errorf("larger than %d bytes", maxFile))
			}
			r.buf = append(r.buf, make([]byte, len(r.buf))...)
		}
		m, err := unix.Read(fd, r.buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			unix.Close(fd)
			return nil, r.fileErr(pid, name, "read", err)
		}
		n += m
		// proc generates a whole file per read(2) (seq_file single_open,
		// and cmdline loops until the buffer is full), so a short read is
		// the end: this saves the second read(2) that would return 0.
		// Regular files in fixture trees behave the same.
		if m == 0 || n < len(r.buf) {
			break
		}
	}
	unix.Close(fd)
	return r.buf[:n], nil
}

// fileErr wraps an error from file name of process pid ("" for its
// directory) with the path, as a *GoneError when it means the process has
// exited.
func (r *reader) fileErr(pid int, name, op string, err error) error {
	path := r.fs.Path(pid, trimNUL(name))
	if isGoneErrno(err) {
		return &GoneError{Path: path, Err: err}
	}
	return &fs.PathError{Op: op, Path: path, Err: err}
}

func trimNUL(name string) string {
	if n := len(name); n > 0 && name[n-1] == 0 {
		return name[:n-1]
	}
	return name
}

// openat is unix.Openat for a name that already ends in NUL. unix.Openat
// copies the name to a new NUL-terminated buffer on every call, which is
// one heap allocation per file and 15,000 per scan of 5,000 processes.
func openat(dir int, name *byte, flags int) (int, error) {
	for {
		fd, _, errno := unix.Syscall6(unix.SYS_OPENAT, uintptr(dir),
			uintptr(unsafe.Pointer(name)), uintptr(flags), 0, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return -1, errno
		}
		return int(fd), nil
	}
}

func openDir(path string) (int, error) {
	for {
		fd, err := unix.Open(path, openFlags|unix.O_DIRECTORY, 0)
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}
