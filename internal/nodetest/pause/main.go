// Command pause is the node test's pod sandbox image: it sleeps as PID 1 of
// the pod, reaps children and exits on SIGINT or SIGTERM, as the upstream
// pause image does. Built static and packed into an OCI image by
// internal/nodetest, so the guest's containerd never pulls one.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
