package nodetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"podwarden/internal/vmtest"
)

// Guest network (qemu user networking): the node is 10.0.2.15; the
// kubernetes Service IP, first of ServiceCIDR, is forwarded by qemu to the
// API server on this host's loopback, which is how kubelet and pods reach
// it without kube-proxy.
const (
	NodeIP      = "10.0.2.15"
	ServiceCIDR = "10.0.2.96/28"
	ServiceIP   = "10.0.2.97"
	guestdPort  = "7070"
	// RegistryHost is the release registry as the node and every
	// reference in the release name it: qemu forwards it to the registry
	// on this host's loopback, and the host's clients dial loopback for
	// it (registryTransport), so the chart's image name is the same on
	// both sides, as it is for a user whose nodes and laptop see one
	// registry. A private address: containerd and go-containerregistry
	// speak plain HTTP to it only because the node's hosts.toml and the
	// RFC 1918 rule say so.
	RegistryHost = "10.0.2.100:5000"
	// DataDir is where the guest mounts NodeConfig.Disk.
	DataDir = "/mnt/data"
)

// NodeConfig is one boot of the node guest.
type NodeConfig struct {
	Machine vmtest.Machine
	Initrd  string
	Busybox string // runs qemu's guestfwd command (nc to the API server)
	APIPort string // the API server's port on 127.0.0.1
	// RegistryPort is the release registry's port on 127.0.0.1, reached
	// from the guest as RegistryHost; empty for none.
	RegistryPort string
	// Disk is an ext4 image attached read-only as /dev/vda (mounted at
	// DataDir); empty for none.
	Disk    string
	Console string // file the console is written to, line by line
	// AppArmor false boots the kernel with apparmor=0: a node like the
	// SELinux distributions, EKS AL2023 and Bottlerocket.
	AppArmor bool
}

// Node is a running guest.
type Node struct {
	// Guestd is guestd's address on this host's loopback.
	Guestd  string
	Started time.Time

	cancel context.CancelFunc
	done   chan struct{}
	err    error

	mu    sync.Mutex
	marks map[string]time.Duration // PWNODE word -> time since qemu started
	fatal []string
	tail  []string
}

// Boot starts qemu; it returns at once. The guest runs until Stop.
func Boot(cfg NodeConfig) (*Node, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	m := cfg.Machine
	m.CPUs, m.MemMiB = 2, 2048
	// no_timer_check: on a loaded host the emulated timer misses the
	// kernel's IO-APIC check and the guest panics at boot ("IO-APIC +
	// timer doesn't work!"), seen here at load 30 on 2 cores.
	m.Append = "no_timer_check"
	if !cfg.AppArmor {
		m.Append += " apparmor=0"
	}
	nic := fmt.Sprintf("user,model=e1000,restrict=on,net=10.0.2.0/24,host=10.0.2.2,"+
		"hostfwd=tcp:127.0.0.1:%s-%s:%s,guestfwd=tcp:%s:443-cmd:%s nc 127.0.0.1 %s",
		port, NodeIP, guestdPort, ServiceIP, cfg.Busybox, cfg.APIPort)
	if cfg.RegistryPort != "" {
		// restrict=on keeps the guest off this host's network: the
		// registry is one more forwarded address, like the API server.
		nic += fmt.Sprintf(",guestfwd=tcp:%s-cmd:%s nc 127.0.0.1 %s", RegistryHost, cfg.Busybox, cfg.RegistryPort)
	}
	m.Extra = []string{"-nic", nic}
	if cfg.Disk != "" {
		m.Extra = append(m.Extra, "-drive", "file="+cfg.Disk+",if=virtio,format=raw,readonly=on")
	}
	con, err := os.Create(cfg.Console)
	if err != nil {
		return nil, fmt.Errorf("console file: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{Guestd: "127.0.0.1:" + port, Started: time.Now(), cancel: cancel,
		done: make(chan struct{}), marks: map[string]time.Duration{}}
	go func() {
		defer close(n.done)
		defer con.Close()
		err := m.Boot(ctx, cfg.Initrd, func(ts time.Time, l string) {
			fmt.Fprintln(con, l)
			n.line(ts, l)
		})
		n.mu.Lock()
		n.err = err
		n.mu.Unlock()
	}()
	return n, nil
}

func (n *Node) line(ts time.Time, l string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.tail = append(n.tail, l)
	if len(n.tail) > 40 {
		n.tail = n.tail[1:]
	}
	i := strings.Index(l, "PWNODE ")
	if i < 0 {
		return
	}
	f := strings.Fields(l[i+len("PWNODE "):])
	if len(f) == 0 {
		return
	}
	if f[0] == "fatal" {
		n.fatal = append(n.fatal, strings.Join(f[1:], " "))
		return
	}
	if _, ok := n.marks[f[0]]; !ok {
		n.marks[f[0]] = ts.Sub(n.Started)
	}
}

// WaitMark waits until /init printed "PWNODE <word>" and returns when it
// did, counted from qemu's start.
func (n *Node) WaitMark(ctx context.Context, word string) (time.Duration, error) {
	for {
		n.mu.Lock()
		d, ok := n.marks[word]
		fatal := n.fatal
		n.mu.Unlock()
		if len(fatal) > 0 {
			return 0, fmt.Errorf("guest setup failed: %s", strings.Join(fatal, "; "))
		}
		if ok {
			return d, nil
		}
		select {
		case <-n.done:
			return 0, fmt.Errorf("guest stopped before %q: %v; console tail:\n%s", word, n.err, n.Tail())
		case <-ctx.Done():
			return 0, fmt.Errorf("waiting for %q: %w; console tail:\n%s", word, ctx.Err(), n.Tail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Tail is the console's last lines.
func (n *Node) Tail() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.tail, "\n")
}

// Stop ends qemu (the guest holds nothing that must be saved) and waits.
func (n *Node) Stop() {
	n.cancel()
	<-n.done
}

// ExecResult is guestd's answer.
type ExecResult struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	Code   int    `json:"code"`
	Error  string `json:"error,omitempty"`
}

// Sh runs script with the guest's sh as root (at guestd's -1000, unless
// the script changes its own oom_score_adj) and returns its output. A
// non-zero exit is an error carrying stderr.
func (n *Node) Sh(ctx context.Context, script string) (string, error) {
	r, err := n.exec(ctx, []string{"/bin/sh", "-c", script})
	if err != nil {
		return "", err
	}
	if r.Code != 0 {
		return r.Stdout, fmt.Errorf("guest sh %q: exit %d: %s", firstLine(script), r.Code, strings.TrimSpace(r.Stderr))
	}
	return r.Stdout, nil
}

func (n *Node) exec(ctx context.Context, argv []string) (ExecResult, error) {
	body, _ := json.Marshal(map[string]any{"argv": argv})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+n.Guestd+"/exec", bytes.NewReader(body))
	if err != nil {
		return ExecResult{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ExecResult{}, fmt.Errorf("guestd: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return ExecResult{}, fmt.Errorf("guestd: %s: %s", resp.Status, b)
	}
	var r ExecResult
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return r, fmt.Errorf("guestd answer: %w", err)
	}
	return r, nil
}

// WaitGuestd waits until guestd answers.
func (n *Node) WaitGuestd(ctx context.Context) error {
	for {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := n.Sh(c, "true")
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("guestd not answering: %w (last: %v)", ctx.Err(), err)
		case <-n.done:
			return fmt.Errorf("guest stopped: %v; console tail:\n%s", n.err, n.Tail())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	if len(l) > 60 {
		l = l[:60] + "..."
	}
	return l
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p, nil
}

// Egress is the API server's way to the node (EgressSelectorConfiguration
// "cluster" over a unix socket): each connection is piped to the current
// node's guestd, which answers the server's HTTP CONNECT from inside the
// guest. The host gets no route or address for the guest's network.
type Egress struct {
	Socket string
	l      net.Listener
	mu     sync.Mutex
	target string
	wg     sync.WaitGroup
}

// ListenEgress opens the socket at path.
func ListenEgress(path string) (*Egress, error) {
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("egress socket: %w", err)
	}
	e := &Egress{Socket: path, l: l}
	e.wg.Add(1)
	go e.serve()
	return e, nil
}

// SetNode points the egress at n's guestd.
func (e *Egress) SetNode(n *Node) {
	e.mu.Lock()
	e.target = n.Guestd
	e.mu.Unlock()
}

func (e *Egress) serve() {
	defer e.wg.Done()
	for {
		c, err := e.l.Accept()
		if err != nil {
			return
		}
		e.mu.Lock()
		target := e.target
		e.mu.Unlock()
		go pipe(c, target)
	}
}

func pipe(c net.Conn, target string) {
	defer c.Close()
	if target == "" {
		return
	}
	up, err := net.DialTimeout("tcp", target, 10*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	go func() {
		io.Copy(up, c)
		if t, ok := up.(*net.TCPConn); ok {
			t.CloseWrite()
		}
	}()
	io.Copy(c, up)
}

// Close stops accepting; open tunnels end with their connections.
func (e *Egress) Close() error {
	err := e.l.Close()
	e.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
