package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Trigger is a PSI trigger (Documentation/accounting/psi.rst): the kernel
// wakes a poller when tasks stalled on memory for at least Stall within
// any Window. Some counts time in which at least one task stalled, Full
// time in which all non-idle tasks did.
type Trigger struct {
	Full   bool
	Stall  time.Duration
	Window time.Duration
}

// UnprivilegedWindow: without CAP_SYS_RESOURCE, kernels since 6.5 accept
// only trigger windows that are a multiple of it (EINVAL otherwise), and
// older ones refuse triggers (EPERM).
const UnprivilegedWindow = 2 * time.Second

// String is what is written to the pressure file: "some 100000 1000000"
// (stall and window in microseconds).
func (t Trigger) String() string {
	kind := "some"
	if t.Full {
		kind = "full"
	}
	return fmt.Sprintf("%s %d %d", kind, t.Stall.Microseconds(), t.Window.Microseconds())
}

// TriggerFD is an open PSI trigger. Poll its Fd for POLLPRI: the kernel
// raises it at most once per window while the stall threshold is crossed.
// POLLERR means the cgroup was removed.
type TriggerFD struct {
	fd   int
	file string
}

// OpenTrigger arms t on a pressure file (/proc/pressure/memory or a
// cgroup's memory.pressure). A kernel without PSI or triggers gives an
// error wrapping errors.ErrUnsupported; a process without CAP_SYS_RESOURCE
// gets EPERM (before 6.5) or EINVAL for a window that is not a multiple of
// UnprivilegedWindow (6.5+).
func OpenTrigger(file string, t Trigger) (*TriggerFD, error) {
	fd, err := unix.Open(file, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		err = opError("open", file, err)
		if errors.Is(err, os.ErrNotExist) && isDir(filepath.Dir(file)) {
			err = fmt.Errorf("open %s: %w", file, errors.ErrUnsupported)
		}
		return nil, err
	}
	// The kernel takes the string with or without its NUL; systemd and
	// the kernel's own example write it.
	if _, err := unix.Write(fd, append([]byte(t.String()), 0)); err != nil {
		unix.Close(fd)
		if errors.Is(err, syscall.EOPNOTSUPP) {
			// psi=0 on the command line keeps the files but refuses
			// triggers.
			return nil, fmt.Errorf("trigger %q on %s: %w (%w)", t, file, errors.ErrUnsupported, err)
		}
		return nil, fmt.Errorf("trigger %q on %s: %w", t, file, goneIfRemoved(err))
	}
	return &TriggerFD{fd: fd, file: file}, nil
}

// goneIfRemoved reports ENODEV (the cgroup was removed under us) as gone.
func goneIfRemoved(err error) error {
	if errors.Is(err, syscall.ENODEV) {
		return goneError{err}
	}
	return err
}

// OpenPressureTrigger arms t on cg's memory.pressure (see PressureFile for
// where that is on each hierarchy).
func (fs FS) OpenPressureTrigger(cg string, t Trigger) (*TriggerFD, error) {
	file, err := fs.PressureFile(cg)
	if err != nil {
		return nil, err
	}
	return OpenTrigger(file, t)
}

// SystemPressureFile is the root cgroup's memory.pressure, the node's
// other door to the system-wide PSI group: the kernel maps the root cgroup
// to it (psi_system, since 5.2), so it reads and triggers as
// /proc/pressure/memory does. It matters where /proc/pressure/memory
// cannot be opened for writing: containerd's default AppArmor profile
// denies writes under /proc/<not a pid>/ but allows /sys/fs/cgroup.
//
// Only the host's root cgroup qualifies: a cgroup2 mount made inside a
// cgroup namespace has the namespace's cgroup at its top, whose pressure
// is its own, not the node's. Every cgroup but the root has cgroup.type,
// which tells them apart. Cgroup v1 has no pressure files
// (errors.ErrUnsupported); hybrid mode has them in its unified mount.
func (fs FS) SystemPressureFile() (string, error) {
	dir := fs.root
	switch fs.version {
	case V1:
		return "", fmt.Errorf("system memory.pressure on cgroup v1: %w", errors.ErrUnsupported)
	case Hybrid:
		dir = filepath.Join(fs.root, "unified")
	}
	if _, err := os.Lstat(filepath.Join(dir, "cgroup.type")); err == nil {
		return "", fmt.Errorf("%s is not the host's root cgroup (it has cgroup.type: mounted inside a cgroup namespace?): its memory.pressure is not the node's", dir)
	}
	return filepath.Join(dir, "memory.pressure"), nil
}

// Fd is the descriptor to poll; it stays owned by the TriggerFD.
func (t *TriggerFD) Fd() int { return t.fd }

// File is the pressure file the trigger is armed on.
func (t *TriggerFD) File() string { return t.file }

// Close disarms the trigger.
func (t *TriggerFD) Close() error {
	if t.fd < 0 {
		return nil
	}
	err := unix.Close(t.fd)
	t.fd = -1
	return err
}
