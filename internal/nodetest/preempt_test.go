package nodetest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Scenario 4b: early action as the chart ships it (policy.preempt on). A
// pod without the opt-out annotation runs the hog; the agent ends the hog,
// and only the hog, before the kernel's OOM killer has to: no OOM report
// in the kernel log, the pod keeps running with no restart, a Warning
// MemoryPressureKill Event on the pod names the process, the agent's
// metric counts it, the host daemons live and the node never leaves Ready.
//
// The pod is BestEffort: nb still holds most of the node's allocatable
// memory in requests, and early action on the node's memory (not a
// container limit) is what the notes' crash needs.
func scenarioPreempt(t *testing.T, c *cluster, n *Node) {
	ctx := t.Context()
	const name = "pw"
	createPod(ctx, t, c.admin, podSpec(usersNS, name, nodeA, idleScript, "", ""))
	if _, err := waitRunning(ctx, c.admin, usersNS, name, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	// Protected first (adj 900), so the agent lists it as a target.
	var before ContainerView
	if err := poll(ctx, 2*time.Minute, time.Second, func(context.Context) (bool, error) {
		before, _ = c.view(ctx, t, n, usersNS, name)
		return len(before.Procs) > 0 && !slices.ContainsFunc(before.Procs, func(p GuestProc) bool { return p.Adj != 900 }), nil
	}); err != nil {
		t.Fatalf("%s/%s never protected: %+v", usersNS, name, before)
	}
	r := c.runWatchedHog(ctx, t, n, usersNS, name, "s4b", hogScript)
	timing("scenario 4b: the hog ended %s after it started (early action)", r.took)
	if k := kills(r.klog); len(k) > 0 || strings.Contains(r.klog, "invoked oom-killer") {
		t.Errorf("the kernel's OOM killer ran (killed %v): early action came too late", k)
	}
	c.checkSurvivors(ctx, t, n, r)

	// What the user sees: the Event on the pod, and the metric.
	var ev *corev1.Event
	if err := poll(ctx, 2*time.Minute, 2*time.Second, func(ctx context.Context) (bool, error) {
		evs, err := c.admin.CoreV1().Events(usersNS).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
		if err != nil {
			return false, err
		}
		for i := range evs.Items {
			if e := &evs.Items[i]; e.Reason == "MemoryPressureKill" && e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, "hog") {
				ev = e
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Errorf("no Warning MemoryPressureKill Event on %s/%s naming the hog: %v", usersNS, name, err)
	} else {
		t.Logf("REPORT scenario 4b: Event %s %s from %s: %s", ev.Type, ev.Reason, ev.Source.Component, ev.Message)
	}
	var text string
	if err := poll(ctx, time.Minute, 2*time.Second, func(ctx context.Context) (bool, error) {
		var err error
		text, err = c.metrics(ctx, r.agent.Name)
		v, ok := metricValue(text, "podwarden_preempt_kills_total", `namespace="users"`, `pod="`+name+`"`)
		return ok && v >= 1, err
	}); err != nil {
		t.Errorf("podwarden_preempt_kills_total for %s/%s: %v\n%s", usersNS, name, err, grepLines(text, "preempt"))
	}
	t.Logf("REPORT scenario 4b: %s", strings.ReplaceAll(grepLines(text, "podwarden_preempt_"), "\n", "; "))

	if err := c.admin.CoreV1().Pods(usersNS).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Errorf("deleting %s/%s: %v", usersNS, name, err)
	}
}
