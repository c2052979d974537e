package regtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// ErrNoBinary is returned when docker-registry is not installed.
var ErrNoBinary = errors.New("docker-registry not found (apt-get install docker-registry)")

// Registry is a running docker-registry.
type Registry struct {
	// Host is host:port, e.g. 127.0.0.1:40123.
	Host string
	cmd  *exec.Cmd
	done chan error
}

const config = `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
`

// Start runs docker-registry with storage under dir until ctx is done or
// Stop is called. It returns once the registry answers /v2/.
func Start(ctx context.Context, dir string) (*Registry, error) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return nil, ErrNoBinary
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	storage := filepath.Join(dir, "storage")
	if err := os.MkdirAll(storage, 0o755); err != nil {
		return nil, fmt.Errorf("creating storage dir: %w", err)
	}
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(config, storage, addr)), 0o644); err != nil {
		return nil, fmt.Errorf("writing registry config: %w", err)
	}
	cmd := exec.CommandContext(ctx, bin, "serve", cfg)
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		return nil, fmt.Errorf("creating registry log: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// A killed test binary runs no cleanup: the kernel ends the registry
	// with it, or it would hold its port and storage until reboot.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting docker-registry: %w", err)
	}
	r := &Registry{Host: addr, cmd: cmd, done: make(chan error, 1)}
	go func() { r.done <- cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r, nil
			}
		}
		select {
		case err := <-r.done:
			return nil, fmt.Errorf("docker-registry exited: %v (see %s)", err, logf.Name())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.Stop()
			return nil, fmt.Errorf("docker-registry not ready on %s after 10s", addr)
		}
	}
}

// Stop kills the registry and waits for it.
func (r *Registry) Stop() {
	if r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
	}
	<-r.done
	r.done <- nil // let a second Stop return
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}
