package agent

import (
	"context"
	"sync"
	"testing"
	"time"

	"podwarden/internal/kmsg"
	"podwarden/internal/kubeevent"
	"podwarden/internal/oomreport"
	"podwarden/internal/policy"
)

// fakeReporter records what the agent would post; the real reporter is
// tested against a real kube-apiserver in internal/kube.
type fakeReporter struct {
	mu   sync.Mutex
	pods []kubeevent.OOM
	node []kubeevent.OOM
}

func (f *fakeReporter) PodOOM(_ context.Context, o kubeevent.OOM) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pods = append(f.pods, o)
	return nil
}

func (f *fakeReporter) NodeOOM(_ context.Context, o kubeevent.OOM) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.node = append(f.node, o)
	return nil
}

// TestKernelLogReports replays the real node OOM the 6.1 qemu guest
// printed (k8s mode of the node-OOM scenario): three host daemons die, then
// the hog and, through memory.oom.group, its whole container.
func TestKernelLogReports(t *testing.T) {
	const (
		uid = "8c2d7e1a-3b4f-4a5e-8d6c-7f8091a2b3c4"
		cid = "9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203f4e5d6c7b8a9"
	)
	n := newNode(t)
	rep := &fakeReporter{}
	a := newTestAgent(t, n, true)
	a.cfg.Reporter = rep
	a.poster = a.startPoster(t.Context())
	a.addTarget(&Target{
		Cgroup: "/kubepods/besteffort/pod" + uid + "/" + cid, PodUID: uid, Namespace: "users", PodName: "notebook-0",
		ContainerID: cid, Container: "notebook", Decision: policy.Decision{Target: true},
	})

	dev, err := kmsg.OpenDevice("../oomreport/testdata/guest-6.1-v2-node-oom.kmsg", false, false)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan oomreport.Report, 16)
	defer dev.Close()
	if err := followKernelLog(context.Background(), dev.Next, out); err != nil {
		t.Fatal(err)
	}
	close(out)
	nreports := 0
	for r := range out {
		nreports++
		a.onReport(r)
	}
	if nreports != 4 {
		t.Fatalf("%d reports, want 4", nreports)
	}
	// The poster posts beside the loop: wait for it.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		rep.mu.Lock()
		n := len(rep.pods) + len(rep.node)
		rep.mu.Unlock()
		if n >= 4 || time.Now().After(deadline) {
			break
		}
	}
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if len(rep.pods) != 1 {
		t.Fatalf("pod events = %+v, want one for the hog", rep.pods)
	}
	p := rep.pods[0]
	if p.PodName != "notebook-0" || p.Namespace != "users" || p.Container != "notebook" || p.Comm != "tail" ||
		p.PID != 478 || p.Kind != "node" || !p.GroupKill || p.Bystanders != 2 || p.AnonRSSBytes != 143244*1024 {
		t.Fatalf("pod event = %+v", p)
	}
	if len(rep.node) != 3 {
		t.Fatalf("node events = %+v, want 3 (chronyd, systemd-network, sshd)", rep.node)
	}
	if got := rep.node[2].HostVictims; len(got) != 1 || got[0] != "sshd (pid 439)" {
		t.Fatalf("third node event victims = %v", got)
	}
}
