package agent

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"podwarden/internal/kmsg"
	"podwarden/internal/kubeevent"
	"podwarden/internal/oomreport"
	"podwarden/internal/policy"
	"podwarden/internal/target"
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

func (f *fakeReporter) Observe(kubeevent.Observer) {}

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
	a.addTarget(&Target{Ref: target.Ref{
		Cgroup: "/kubepods/besteffort/pod" + uid + "/" + cid, PodUID: uid, Namespace: "users", PodName: "notebook-0",
		ContainerID: cid, Container: "notebook",
	}, Decision: policy.Decision{Target: true}})

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
	// The outbox may post beside the loop: wait for it.
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
		p.PID != 478 || p.Kind != oomreport.KindNode || !p.GroupKill || p.Bystanders != 2 || p.AnonRSSBytes != 143244*1024 {
		t.Fatalf("pod event = %+v", p)
	}
	if len(rep.node) != 3 {
		t.Fatalf("node events = %+v, want 3 (chronyd, systemd-network, sshd)", rep.node)
	}
	if got := rep.node[2].HostVictims; len(got) != 1 || got[0] != "sshd (pid 439)" {
		t.Fatalf("third node event victims = %v", got)
	}
}

// TestOOMKillsCountOnlyTargets replays two real guest kernel logs: a node
// OOM that killed three host daemons and then a target's whole container,
// and a container-limit OOM in a pod the policy does not select (on a
// shared host the agent used to count such pods' kills as its own). Only
// the target's kills count as pod OOMs, the host daemons' as kind host.
func TestOOMKillsCountOnlyTargets(t *testing.T) {
	const (
		uid = "8c2d7e1a-3b4f-4a5e-8d6c-7f8091a2b3c4"
		cid = "9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203f4e5d6c7b8a9"
	)
	n := newNode(t)
	a := newTestAgent(t, n, true)
	reg := prometheus.NewRegistry()
	a.m = NewMetrics(reg)
	a.addTarget(&Target{Ref: target.Ref{
		Cgroup: "/kubepods/besteffort/pod" + uid + "/" + cid, PodUID: uid, Namespace: "users", PodName: "notebook-0",
		ContainerID: cid, Container: "notebook",
	}, Decision: policy.Decision{Target: true}})
	for _, f := range []string{"guest-6.1-v2-node-oom.kmsg", "guest-6.1-v2-container-limit.kmsg"} {
		dev, err := kmsg.OpenDevice("../oomreport/testdata/"+f, false, false)
		if err != nil {
			t.Fatal(err)
		}
		out := make(chan oomreport.Report, 16)
		err = followKernelLog(context.Background(), dev.Next, out)
		dev.Close()
		if err != nil {
			t.Fatal(err)
		}
		close(out)
		for r := range out {
			a.onReport(r)
		}
	}
	want := `
# HELP podwarden_oom_kills_total Processes the kernel OOM-killed in target containers (kind cgroup: a memory limit; node: the node ran out; unknown: seen only through memory.events) and host processes killed in node OOMs (kind host, no pod).
# TYPE podwarden_oom_kills_total counter
podwarden_oom_kills_total{container="",kind="host",namespace="",pod=""} 3
podwarden_oom_kills_total{container="notebook",kind="node",namespace="users",pod="notebook-0"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "podwarden_oom_kills_total"); err != nil {
		t.Error(err)
	}
	for _, l := range []string{OOMKindCgroup, OOMKindNode, OOMKindHost, OOMKindUnknown} {
		if !slices.Contains(OOMKinds, l) {
			t.Errorf("kind %s not in OOMKinds", l)
		}
	}
}

// TestProtectedContainerInfo: one series per target, gone with the last
// target that had its labels.
func TestProtectedContainerInfo(t *testing.T) {
	n := newNode(t)
	a := newTestAgent(t, n, true)
	reg := prometheus.NewRegistry()
	a.m = NewMetrics(reg)
	mk := func(cg, id string) *Target {
		return &Target{Ref: target.Ref{Cgroup: cg, PodUID: "u1", Namespace: "ml", PodName: "nb-0", ContainerID: id, Container: "notebook"}}
	}
	a.addTarget(mk("/kubepods/podu1/old", "old"))
	a.addTarget(mk("/kubepods/podu1/new", "new")) // restarted: same names
	a.addTarget(&Target{Ref: target.Ref{Cgroup: "/kubepods/podu2/x", PodUID: "0f1e2d3c-0000-4000-8000-000000000002", ContainerID: strings.Repeat("ab", 32)}})
	a.dropTarget("/kubepods/podu1/old")
	want := `
# HELP podwarden_protected_container_info 1 for each target container the agent protects now (pod is the pod's name, or its UID where the name is not known).
# TYPE podwarden_protected_container_info gauge
podwarden_protected_container_info{container="ababababababa",namespace="",pod="0f1e2d3c-0000-4000-8000-000000000002"} 1
podwarden_protected_container_info{container="notebook",namespace="ml",pod="nb-0"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "podwarden_protected_container_info"); err != nil {
		t.Error(err)
	}
	a.dropTarget("/kubepods/podu1/new")
	a.setTargets(map[string]*Target{})
	if n, err := testutil.GatherAndCount(reg, "podwarden_protected_container_info"); err != nil || n != 0 {
		t.Errorf("after every target went: %d series, %v", n, err)
	}
}
