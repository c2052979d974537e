package vmtest

import (
	"bufio"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Arch is what differs between guest architectures: the qemu binary and
// board, the console device, and where Debian's kernel for it is.
type Arch struct {
	GOARCH string // amd64, arm64: what the guest's binaries are built for
	Qemu   string // qemu-system-x86_64, qemu-system-aarch64
	// Board are qemu arguments that choose the machine and CPU.
	Board []string
	// Console is the serial device the kernel writes to: ttyS0 (8250) on
	// a PC, ttyAMA0 (PL011) on the arm virt board.
	Console string
	// UnameM is what `uname -m` says in the guest.
	UnameM string
	// ELF is the machine of the binaries the guest can run.
	ELF elf.Machine
	// Kernels is where a Debian 6.1 kernel for the arch is looked for.
	Kernels string
	// Env prefixes the variables that override qemu and the kernel
	// (PWVM_QEMU, PWVM_ARM64_QEMU...).
	Env string
	// Install says how to get qemu and the kernel, for skip messages.
	Install string
	// Cmdline is added to the kernel command line on this arch.
	Cmdline string
}

var (
	// ArchAMD64 is the PC the suite has always booted.
	ArchAMD64 = Arch{GOARCH: "amd64", Qemu: "qemu-system-x86_64", Console: "ttyS0", UnameM: "x86_64",
		ELF: elf.EM_X86_64, Kernels: "/boot/vmlinuz-6.1*", Env: "PWVM_",
		Install: "apt-get install qemu-system-x86 linux-image-amd64",
		// A busy host starves a guest's boot so that its IO-APIC timer
		// check fails and the kernel panics ("IO-APIC + timer doesn't
		// work!", seen 2026-12-07 at load 27); virtual machines skip it.
		Cmdline: "no_timer_check"}
	// ArchARM64 is qemu's virt board under TCG with Debian's arm64 kernel,
	// which hack/install-deps.sh extracts (never installs) under
	// /var/cache/podwarden/arm64. -cpu max has what server cores have
	// (LSE atomics, which Go's runtime uses when present; pointer
	// authentication); pauth-impdef=on emulates pointer authentication
	// with a cheap hash instead of QARMA, which made the kernel's boot 6x
	// slower (10.6 s of guest time to /init instead of 1.7-2.9 s).
	ArchARM64 = Arch{GOARCH: "arm64", Qemu: "qemu-system-aarch64", Board: []string{"-M", "virt", "-cpu", "max,pauth-impdef=on"},
		Console: "ttyAMA0", UnameM: "aarch64", ELF: elf.EM_AARCH64,
		Kernels: "/var/cache/podwarden/arm64/boot/vmlinuz-6.1*", Env: "PWVM_ARM64_",
		Install: "hack/install-deps.sh installs qemu-system-arm and extracts the arm64 kernel to /var/cache/podwarden/arm64"}
)

// Machine describes the guest hardware and kernel.
type Machine struct {
	// Arch is the guest's architecture; the zero value is ArchAMD64.
	Arch   Arch
	Qemu   string // Arch.Qemu, found
	Kernel string // with cgroup v2, memcg and the arch's serial console built in
	Accel  string // "tcg" or "kvm"
	MemMiB int    // small, so that a node OOM arrives within seconds
	// CPUs is the guest's vCPU count (0 means 1).
	CPUs int
	// Append is added to the kernel command line.
	Append string
	// Extra are more qemu arguments (e.g. a -nic with forwards).
	Extra []string
}

// FindMachine locates qemu and a Debian 6.1 kernel for an amd64 guest.
// PWVM_QEMU and PWVM_KERNEL override the search. The error says what is
// missing, for the test's skip message.
func FindMachine() (Machine, error) { return FindMachineFor(ArchAMD64) }

// FindMachineFor locates qemu and a Debian 6.1 kernel for a guest of arch;
// <a.Env>QEMU and <a.Env>KERNEL override the search.
func FindMachineFor(a Arch) (Machine, error) {
	// TCG by default: on the development machine KVM stops in the BIOS
	// ("Booting from ROM...") and never reaches the kernel, and an arm64
	// guest on an amd64 host has nothing else.
	m := Machine{Arch: a, Accel: "tcg", MemMiB: 256}
	if q := os.Getenv(a.Env + "QEMU"); q != "" {
		m.Qemu = q
	} else if q, err := exec.LookPath(a.Qemu); err == nil {
		m.Qemu = q
	} else {
		return m, fmt.Errorf("%s not found (%s)", a.Qemu, a.Install)
	}
	if k := os.Getenv(a.Env + "KERNEL"); k != "" {
		m.Kernel = k
	} else {
		ks, _ := filepath.Glob(a.Kernels)
		if len(ks) == 0 {
			return m, fmt.Errorf("no %s (%s) and %sKERNEL unset", a.Kernels, a.Install, a.Env)
		}
		sort.Strings(ks)
		m.Kernel = ks[len(ks)-1]
	}
	if _, err := os.Stat(m.Kernel); err != nil {
		return m, fmt.Errorf("%s kernel: %w", a.GOARCH, err)
	}
	if acc := os.Getenv(a.Env + "ACCEL"); acc != "" {
		m.Accel = acc
	}
	return m, nil
}

// arch is m's architecture, amd64 for a Machine made before there was a
// choice.
func (m Machine) arch() Arch {
	if m.Arch.GOARCH == "" {
		return ArchAMD64
	}
	return m.Arch
}

// cmdline: quiet and loglevel=1 keep kernel messages off the console so
// they cannot split result lines (dmesg and /dev/kmsg still hold them);
// panic=-1 with -no-reboot turns a guest panic into a qemu exit instead of
// a hang; log_buf_len is large so one boot's OOM reports all fit.
const cmdline = "quiet loglevel=1 panic=-1 log_buf_len=8M " +
	"systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all rdinit=/init"

// Boot runs the guest until it powers off and streams its console lines to
// line (called from one goroutine, in order). It returns when qemu exits or
// ctx ends; a context error means the guest never powered off.
func (m Machine) Boot(ctx context.Context, initrd string, line func(time.Time, string)) error {
	cmd := exec.CommandContext(ctx, m.Qemu, m.args(initrd)...)
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

// args are qemu's arguments for booting initrd on m.
func (m Machine) args(initrd string) []string {
	accel := m.Accel
	if accel == "tcg" {
		// A larger translation cache keeps TCG from retranslating the
		// kernel's hot paths while the hog faults pages in.
		accel = "tcg,tb-size=256"
	}
	a := m.arch()
	args := append(slices.Clone(a.Board),
		"-accel", accel, "-m", fmt.Sprintf("%dM", m.MemMiB), "-smp", fmt.Sprint(max(m.CPUs, 1)),
		"-kernel", m.Kernel, "-initrd", initrd,
		"-append", strings.Join(strings.Fields("console="+a.Console+" "+cmdline+" "+a.Cmdline+" "+m.Append), " "),
		// -nodefaults leaves the board's own UART (the virt board's
		// PL011, the PC's 8250 at 0x3f8) for -serial to connect.
		"-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
	)
	return append(args, m.Extra...)
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
