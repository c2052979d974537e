package vmtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Machine describes the guest hardware and kernel.
type Machine struct {
	Qemu   string // qemu-system-x86_64
	Kernel string // a bzImage with cgroup v2, memcg and an 8250 console built in
	Accel  string // "tcg" or "kvm"
	MemMiB int    // small, so that a node OOM arrives within seconds
	// CPUs is the guest's vCPU count (0 means 1).
	CPUs int
	// Append is added to the kernel command line.
	Append string
	// Extra are more qemu arguments (e.g. a -nic with forwards).
	Extra []string
}

// FindMachine locates qemu and a Debian 6.1 kernel. PWVM_QEMU and
// PWVM_KERNEL override the search. The error says what is missing, for
// the test's skip message.
func FindMachine() (Machine, error) {
	// TCG by default: on the development machine KVM stops in the BIOS
	// ("Booting from ROM...") and never reaches the kernel.
	m := Machine{Accel: "tcg", MemMiB: 256}
	if q := os.Getenv("PWVM_QEMU"); q != "" {
		m.Qemu = q
	} else if q, err := exec.LookPath("qemu-system-x86_64"); err == nil {
		m.Qemu = q
	} else {
		return m, errors.New("qemu-system-x86_64 not found (apt-get install qemu-system-x86)")
	}
	if k := os.Getenv("PWVM_KERNEL"); k != "" {
		m.Kernel = k
	} else {
		ks, _ := filepath.Glob("/boot/vmlinuz-6.1*")
		if len(ks) == 0 {
			return m, errors.New("no /boot/vmlinuz-6.1* (apt-get install linux-image-amd64) and PWVM_KERNEL unset")
		}
		sort.Strings(ks)
		m.Kernel = ks[len(ks)-1]
	}
	if _, err := os.Stat(m.Kernel); err != nil {
		return m, fmt.Errorf("kernel: %w", err)
	}
	if a := os.Getenv("PWVM_ACCEL"); a != "" {
		m.Accel = a
	}
	return m, nil
}

// cmdline: quiet and loglevel=1 keep kernel messages off the console so
// they cannot split result lines (dmesg and /dev/kmsg still hold them);
// panic=-1 with -no-reboot turns a guest panic into a qemu exit instead of
// a hang; log_buf_len is large so one boot's OOM reports all fit.
const cmdline = "console=ttyS0 quiet loglevel=1 panic=-1 log_buf_len=8M " +
	"systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all rdinit=/init"

// Boot runs the guest until it powers off and streams its console lines to
// line (called from one goroutine, in order). It returns when qemu exits or
// ctx ends; a context error means the guest never powered off.
func (m Machine) Boot(ctx context.Context, initrd string, line func(time.Time, string)) error {
	accel := m.Accel
	if accel == "tcg" {
		// A larger translation cache keeps TCG from retranslating the
		// kernel's hot paths while the hog faults pages in.
		accel = "tcg,tb-size=256"
	}
	args := []string{
		"-accel", accel, "-m", fmt.Sprintf("%dM", m.MemMiB), "-smp", fmt.Sprint(max(m.CPUs, 1)),
		"-kernel", m.Kernel, "-initrd", initrd, "-append", strings.TrimSpace(cmdline + " " + m.Append),
		"-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
	}
	args = append(args, m.Extra...)
	cmd := exec.CommandContext(ctx, m.Qemu, args...)
	cmd.WaitDelay = 5 * time.Second
	// A test binary killed by go test's -timeout must not leave a guest
	// running (one such qemu used a core for half an hour here).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("qemu stdout: %w", err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting qemu: %w", err)
	}
	readErr := readLines(out, line)
	werr := cmd.Wait()
	if ctx.Err() != nil {
		return fmt.Errorf("guest did not power off: %w", ctx.Err())
	}
	if werr != nil {
		return fmt.Errorf("qemu: %w: %s", werr, strings.TrimSpace(stderr.String()))
	}
	return readErr
}

func readLines(r io.Reader, line func(time.Time, string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line(time.Now(), strings.TrimRight(sc.Text(), "\r"))
	}
	if err := sc.Err(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("reading console: %w", err)
	}
	return nil
}
