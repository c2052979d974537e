package kube_test

import (
	"context"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"podwarden/internal/kube"
)

func TestPodMessage(t *testing.T) {
	for name, tc := range map[string]struct {
		o    kube.OOM
		want string
	}{
		"node oom, single": {
			o:    kube.OOM{Comm: "python", PID: 1234, Container: "notebook", Kind: kube.KindNode, AnonRSSBytes: 7_623_000_000},
			want: "OOMKilled process python (pid 1234) in container notebook: node out of memory, 7.1 GiB anon; other processes kept running",
		},
		"cgroup oom, group kill": {
			o:    kube.OOM{Comm: "php-fpm", PID: 77, Container: "web", Kind: kube.KindCgroup, AnonRSSBytes: 300 << 20, GroupKill: true, Bystanders: 11},
			want: "OOMKilled process php-fpm (pid 77) in container web: memory limit reached, 300.0 MiB anon; the whole container was killed (memory.oom.group=1) with 11 other processes",
		},
		"one bystander": {
			o:    kube.OOM{Comm: "java", PID: 5, Container: "app", Kind: kube.KindCgroup, GroupKill: true, Bystanders: 1},
			want: "OOMKilled process java (pid 5) in container app: memory limit reached; the whole container was killed (memory.oom.group=1) with 1 other process",
		},
		"unknown comm and kind": {
			o:    kube.OOM{PID: 9},
			want: "OOMKilled process ? (pid 9): out of memory; other processes kept running",
		},
	} {
		t.Run(name, func(t *testing.T) {
			if got := kube.PodMessage(tc.o); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestNodeMessage(t *testing.T) {
	for _, tc := range []struct {
		o    kube.OOM
		want string
	}{
		{kube.OOM{HostVictims: []string{"sshd (pid 812)", "chronyd (pid 640)"}}, "node out of memory: the OOM killer killed host processes sshd (pid 812), chronyd (pid 640)"},
		{kube.OOM{Comm: "sshd", PID: 812, AnonRSSBytes: 2048}, "node out of memory: the OOM killer killed host process sshd (pid 812) (2.0 KiB anon)"},
		{kube.OOM{}, "node out of memory: the OOM killer killed host processes"},
	} {
		if got := kube.NodeMessage(tc.o); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
}

func testPod(ns, name, uid string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid)},
		Spec: corev1.PodSpec{
			Containers:     []corev1.Container{{Name: "notebook", Image: "jupyter"}},
			InitContainers: []corev1.Container{{Name: "setup", Image: "busybox"}},
		},
	}
}

// waitEvents polls until the Events in ns that match reason satisfy done,
// because the recorder writes in the background.
func waitEvents(ctx context.Context, t *testing.T, c kubernetes.Interface, ns, reason string, done func([]corev1.Event) bool) []corev1.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		list, err := c.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil && ctx.Err() == nil {
			t.Fatalf("listing events: %v", err)
		}
		var evs []corev1.Event
		if list != nil {
			for _, e := range list.Items {
				if e.Reason == reason {
					evs = append(evs, e)
				}
			}
		}
		if done(evs) {
			return evs
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s Events in %s; have %+v", reason, ns, evs)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Unit test with client-go's fake clientset: the UID check and the Event's
// fields. The real API server test below covers RBAC and aggregation.
func TestPodOOMChecksUID(t *testing.T) {
	ctx := t.Context()
	c := fake.NewClientset(testPod("ml", "nb-0", "uid-1"))
	r := kube.NewReporter(ctx, c.CoreV1(), "node-a", nil)
	defer r.Close()

	err := r.PodOOM(ctx, kube.OOM{Namespace: "ml", PodName: "nb-0", PodUID: "uid-OLD", Container: "notebook", Comm: "python", PID: 1})
	if !errors.Is(err, kube.ErrPodMismatch) {
		t.Errorf("replaced pod: err %v, want ErrPodMismatch", err)
	}
	err = r.PodOOM(ctx, kube.OOM{Namespace: "ml", PodName: "gone", PodUID: "uid-2", Comm: "python", PID: 1})
	if !errors.Is(err, kube.ErrPodGone) {
		t.Errorf("missing pod: err %v, want ErrPodGone", err)
	}
	if err := r.PodOOM(ctx, kube.OOM{Namespace: "ml", PodName: "nb-0", Comm: "python"}); err == nil {
		t.Error("no UID: want an error, never a guess by name")
	}
	if err := r.PodOOM(ctx, kube.OOM{Namespace: "ml", PodName: "nb-0", PodUID: "uid-1", Container: "setup", Comm: "python", PID: 42, Kind: kube.KindNode}); err != nil {
		t.Fatal(err)
	}
	evs := waitEvents(ctx, t, c, "ml", kube.ReasonOOMKilledProcess, func(e []corev1.Event) bool { return len(e) > 0 })
	e := evs[0]
	if e.Type != corev1.EventTypeWarning || e.InvolvedObject.UID != "uid-1" || e.InvolvedObject.Kind != "Pod" ||
		e.InvolvedObject.FieldPath != "spec.initContainers{setup}" || e.Source.Host != "node-a" || e.Source.Component != kube.Component {
		t.Errorf("event %+v", e)
	}
	if len(evs) != 1 {
		t.Errorf("%d events, want 1 (the mismatched reports must not produce any)", len(evs))
	}
}
