package procfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// FS is a proc filesystem mounted at a root such as "/proc" or, in tests, a
// fixture tree. The zero value is not usable; call NewFS.
type FS struct {
	root    string
	workers int
}

// NewFS returns an FS rooted at root, which must be an existing directory.
func NewFS(root string) (FS, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return FS{}, fmt.Errorf("proc filesystem: %w", err)
	}
	if !fi.IsDir() {
		return FS{}, fmt.Errorf("proc filesystem %s: not a directory", root)
	}
	return FS{root: filepath.Clean(root)}, nil
}

// Root returns the directory fs reads from.
func (fs FS) Root() string { return fs.root }

// WithWorkers returns a copy of fs whose Scan reads with n goroutines; n <= 0
// picks a number from GOMAXPROCS and the process count. Reading /proc is
// almost all system-call time, which parallelises across cores.
func (fs FS) WithWorkers(n int) FS {
	fs.workers = max(n, 0)
	return fs
}

// Path returns the path of file in the directory of process pid, or of the
// directory itself when file is "".
func (fs FS) Path(pid int, file string) string {
	return filepath.Join(fs.root, strconv.Itoa(pid), file)
}

// Field selects what Scan and Read fill in. Each field costs one file per
// process, so callers ask only for what they show.
type Field uint

const (
	// FieldStat reads /proc/PID/stat: PID, PPID, Comm, State, Threads,
	// StartTime and Kernel.
	FieldStat Field = 1 << iota
	// FieldStatus reads /proc/PID/status: UID (real), NSPID and the memory
	// the OOM killer counts: RSSAnon, RSSFile, RSSShmem, Swap and PgTables.
	FieldStatus
	// FieldCmdline reads /proc/PID/cmdline into Cmdline.
	FieldCmdline
	// FieldOOMScore reads /proc/PID/oom_score.
	FieldOOMScore
	// FieldOOMScoreAdj reads /proc/PID/oom_score_adj.
	FieldOOMScoreAdj
	// FieldCgroup reads /proc/PID/cgroup into Cgroup and CgroupV1Memory.
	FieldCgroup

	// FieldAll reads every file above.
	FieldAll = FieldStat | FieldStatus | FieldCmdline | FieldOOMScore | FieldOOMScoreAdj | FieldCgroup
)

// Proc is one process (a thread group), as far as its Fields were read.
type Proc struct {
	PID, PPID int
	Comm      string
	// State is the one-letter state from stat (R, S, D, Z, I, ...).
	State byte
	UID   int
	// NSPID is the process's pid in its own (innermost) PID namespace,
	// from status: 1 for a container's init. 0 when status was not read
	// or the kernel is older than 4.1.
	NSPID   int
	Cmdline []string
	Threads int
	// StartTime is when the process started, in clock ticks after boot
	// (stat field 22). With the pid it names one process for the life of
	// the system: a recycled pid has a later StartTime.
	StartTime uint64
	// Kernel marks a kernel thread (PF_KTHREAD in stat, "Kthread: 1" in
	// status). Without stat on a kernel that has no Kthread line, pid 2
	// (kthreadd) and its children count as kernel threads.
	Kernel bool
	// Exiting marks a process in do_exit (PF_EXITING in stat): its memory
	// may already be gone (exit_mm) while it still has a pid and a
	// status, so a small RSS is not a live process that freed memory.
	Exiting bool

	// Memory in bytes, as the OOM killer counts it (get_mm_rss and
	// MM_SWAPENTS and mm_pgtables_bytes). Zero for kernel threads and
	// zombies, which have no mm.
	RSSAnon, RSSFile, RSSShmem, Swap, PgTables uint64

	OOMScore, OOMScoreAdj int

	// Cgroup is the cgroup v2 path (the "0::" line), "" if none.
	Cgroup string
	// CgroupV1Memory is the cgroup v1 memory controller path, "" if none.
	CgroupV1Memory string

	// Fields says what was read; the other fields are zero.
	Fields Field
}

// RSS returns resident memory: anon + file + shmem, in bytes.
func (p Proc) RSS() uint64 { return p.RSSAnon + p.RSSFile + p.RSSShmem }

// Read reads the given fields of process pid. If the process does not exist
// or exits while it is read, the error matches fs.ErrNotExist.
func (fs FS) Read(pid int, fields Field) (Proc, error) {
	if pid <= 0 {
		return Proc{}, fmt.Errorf("read process %d: invalid pid", pid)
	}
	r := getReader(fs)
	defer putReader(r)
	return r.readPID(atFDCWD, pid, fields)
}

// Meminfo reads /proc/meminfo.
func (fs FS) Meminfo() (Meminfo, error) {
	path := filepath.Join(fs.root, "meminfo")
	b, err := os.ReadFile(path)
	if err != nil {
		return Meminfo{}, fmt.Errorf("read meminfo: %w", err)
	}
	m, err := parseMeminfo(b)
	if err != nil {
		return Meminfo{}, &ParseError{Path: path, Err: err}
	}
	return m, nil
}

// Bounds of oom_score_adj from include/uapi/linux/oom.h.
const (
	oomScoreAdjMin = -1000
	oomScoreAdjMax = 1000
)

// WriteOOMScoreAdj sets /proc/PID/oom_score_adj and reads it back, so a
// caller learns when the kernel did not take the value. Lowering it needs
// CAP_SYS_RESOURCE; the kernel answers EACCES otherwise. It writes to
// whatever process has the pid now: a caller that decided on a process it
// read earlier uses SetOOMScoreAdj, which checks that it is still the same.
func (fs FS) WriteOOMScoreAdj(pid, adj int) error {
	return fs.setOOMScoreAdj(pid, 0, false, adj)
}

// GoneError reports a process that does not exist or exited while it was
// read. It matches fs.ErrNotExist whatever the kernel answered (ENOENT for
// a missing file, ESRCH for a reaped task behind an open directory).
type GoneError struct {
	Path string
	Err  error
}

func (e *GoneError) Error() string { return "process gone: " + e.Path + ": " + e.Err.Error() }

// Is makes errors.Is(err, fs.ErrNotExist) true.
func (e *GoneError) Is(target error) bool { return target == fs.ErrNotExist }

func (e *GoneError) Unwrap() error { return e.Err }

func isGoneErrno(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ESRCH)
}
