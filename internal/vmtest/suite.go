package vmtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Suite boots one guest per mode and runs every scenario of Plan in it:
// a boot costs ~9 s under TCG and the scenarios clean up after themselves,
// so batching is what keeps the suite well inside its 15 minutes.
type Suite struct {
	Machine   Machine
	Busybox   string
	Podwarden string // static binary; "" when the agent is unavailable
	Plan      []string
	WorkDir   string
	// ConsoleDir receives podwarden-vmtest-<mode>.console, written line by
	// line so a hung guest can be read while it hangs.
	ConsoleDir string
}

// ConsolePath is where BootMode writes the console of mode.
func (s *Suite) ConsolePath(mode Mode) string {
	return filepath.Join(s.ConsoleDir, "podwarden-vmtest-"+string(mode)+".console")
}

// BootMode builds the image for mode and boots it. The Boot is returned
// even with an error, holding whatever the guest printed.
func (s *Suite) BootMode(ctx context.Context, mode Mode) (*Boot, error) {
	img := ImageConfig{Busybox: s.Busybox, Mode: mode, Plan: s.Plan}
	if mode == ModePodwarden {
		img.Podwarden = s.Podwarden
	}
	return s.boot(ctx, string(mode), s.Machine, img)
}

// BootCells boots m (typically with a Disk) with img, whose plan holds
// "scenario/mode" cells; label names its console file and initramfs.
func (s *Suite) BootCells(ctx context.Context, label string, m Machine, img ImageConfig) (*Boot, error) {
	if img.Busybox == "" {
		img.Busybox = s.Busybox
	}
	return s.boot(ctx, label, m, img)
}

func (s *Suite) boot(ctx context.Context, label string, m Machine, img ImageConfig) (*Boot, error) {
	initrd := filepath.Join(s.WorkDir, "initramfs-"+label+".cpio")
	if err := WriteInitramfs(initrd, img); err != nil {
		return nil, err
	}
	con, err := os.Create(s.ConsolePath(Mode(label)))
	if err != nil {
		return nil, fmt.Errorf("console file: %w", err)
	}
	defer con.Close()
	start := time.Now()
	p := newParser(img.Mode, start)
	err = m.Boot(ctx, initrd, func(ts time.Time, l string) {
		fmt.Fprintln(con, l)
		p.line(ts, l)
	})
	p.b.Total = time.Since(start)
	if err != nil {
		return p.b, fmt.Errorf("booting %s guest: %w", label, err)
	}
	if len(p.b.Fatal) > 0 {
		return p.b, fmt.Errorf("%s guest setup failed: %v", label, p.b.Fatal)
	}
	return p.b, nil
}
