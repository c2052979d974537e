// Command guestd is the node test's hand inside the qemu guest: the host
// reaches it through one qemu port forward and asks it to run commands
// (POST /exec) and to open TCP connections inside the guest (HTTP CONNECT).
// The API server's egress to the node (kubelet, pod proxy) goes through
// CONNECT, so the host needs no route to the guest's addresses.
//
// It runs as root at oom_score_adj -1000, like the vmtest harness, so a
// node OOM never takes the test's only way in.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"os/exec"
	"time"
)

// ExecRequest and ExecResult are the /exec wire format (mirrored in
// internal/nodetest).
type ExecRequest struct {
	Argv    []string `json:"argv"`
	Stdin   string   `json:"stdin,omitempty"`
	Timeout string   `json:"timeout,omitempty"`
}

type ExecResult struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	Code   int    `json:"code"`
	Error  string `json:"error,omitempty"`
}

func main() {
	addr := flag.String("addr", ":7070", "listen address")
	flag.Parse()
	srv := &http.Server{Addr: *addr, Handler: http.HandlerFunc(serve), ReadHeaderTimeout: 30 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

func serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodConnect:
		connect(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/exec":
		execCmd(w, r)
	case r.URL.Path == "/healthz":
		io.WriteString(w, "ok\n")
	default:
		http.Error(w, "guestd: POST /exec or CONNECT", http.StatusNotFound)
	}
}

func execCmd(w http.ResponseWriter, r *http.Request) {
	var req ExecRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Argv) == 0 {
		http.Error(w, "guestd: bad exec request", http.StatusBadRequest)
		return
	}
	timeout := 5 * time.Minute
	if req.Timeout != "" {
		if d, err := time.ParseDuration(req.Timeout); err == nil {
			timeout = d
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, req.Argv[0], req.Argv[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Stdin = bytes.NewReader([]byte(req.Stdin))
	cmd.WaitDelay = 5 * time.Second
	res := ExecResult{}
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			res.Code = ee.ExitCode()
		} else {
			res.Code = -1
		}
		res.Error = err.Error()
	}
	res.Stdout, res.Stderr = out.String(), errb.String()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(res)
}

// connect tunnels an HTTP CONNECT to host:port inside the guest, as
// kube-apiserver's egress selector (proxyProtocol HTTPConnect) asks.
func connect(w http.ResponseWriter, r *http.Request) {
	up, err := net.DialTimeout("tcp", r.Host, 10*time.Second)
	if err != nil {
		http.Error(w, "guestd: "+err.Error(), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		up.Close()
		http.Error(w, "guestd: no hijack", http.StatusInternalServerError)
		return
	}
	down, buf, err := hj.Hijack()
	if err != nil {
		up.Close()
		return
	}
	io.WriteString(down, "HTTP/1.1 200 Connection established\r\n\r\n")
	go func() {
		// Bytes the client sent after the CONNECT line (TLS hello) are in
		// buf already.
		if n := buf.Reader.Buffered(); n > 0 {
			b, _ := buf.Reader.Peek(n)
			up.Write(b)
		}
		io.Copy(up, down)
		if c, ok := up.(*net.TCPConn); ok {
			c.CloseWrite()
		}
	}()
	io.Copy(down, up)
	down.Close()
	up.Close()
}
