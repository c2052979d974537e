package nodetest

// Scenario 6b (issue 22): helm upgrade from the previous release, its image
// and chart built by its own `make release` code from its commit, to this
// tree's release, on the running node, while a pod starts during the
// rollout. The guest samples every target process's oom_score_adj and its
// container's memory.oom.group throughout, and whether an agent runs.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// prevCommit is the previous release's commit: the last before the
	// release registry path (issue 22), whose chart installs on this
	// node. PODWARDEN_NODETEST_PREV names another.
	prevCommit = "181a723"
	// prevVersion sorts below releaseVersion, as a previous release does.
	prevVersion = "v0.0.0-nodetest.prev"
	// protectionBound is how long a target process may run unprotected
	// once an agent runs: the chart's reconcile interval (values.yaml
	// interval), the agent's backstop behind its event-driven path.
	protectionBound = 10 * time.Second
)

// prevRelease is the previous release as its own code wrote it, pushed.
type prevRelease struct {
	commit string
	image  string // RegistryHost/podwarden@<index digest>
}

// buildPrevRelease extracts commit into dir, runs that commit's release
// command there (`make release` of its day, with its own chart and image
// code), and pushes what it wrote as `make release PUSH=1` and `helm push`
// would: the OCI layout's index and the chart package.
func (r *releaseRegistry) buildPrevRelease(ctx context.Context, repo, dir string) (*prevRelease, error) {
	commit := prevCommit
	if v := os.Getenv("PODWARDEN_NODETEST_PREV"); v != "" {
		commit = v
	}
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return nil, err
	}
	archive := exec.CommandContext(ctx, "sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", repo, commit, src)
	if out, err := archive.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("extracting commit %s: %w: %s", commit, err, out)
	}
	dist := filepath.Join(dir, "dist")
	build := exec.CommandContext(ctx, "go", "run", "./hack/release", "-version", prevVersion, "-registry", RegistryHost, "-o", dist)
	build.Dir = src
	build.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("release of commit %s: %w: %s", commit, err, out)
	}
	p, err := layout.FromPath(filepath.Join(dist, "podwarden-image"))
	if err != nil {
		return nil, fmt.Errorf("commit %s's image layout: %w", commit, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("commit %s's image index: %w", commit, err)
	}
	tag, err := name.NewTag(RegistryHost + "/podwarden:" + prevVersion)
	if err != nil {
		return nil, err
	}
	if err := remote.WriteIndex(tag, idx, remote.WithContext(ctx), remote.WithTransport(r.tr)); err != nil {
		return nil, fmt.Errorf("pushing commit %s's image to %s: %w", commit, tag, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return nil, err
	}
	chartVer := strings.TrimPrefix(prevVersion, "v")
	tgz, err := os.ReadFile(filepath.Join(dist, "podwarden-"+chartVer+".tgz"))
	if err != nil {
		return nil, fmt.Errorf("commit %s's chart: %w", commit, err)
	}
	rc, err := r.registryClient(filepath.Join(dir, "helm"))
	if err != nil {
		return nil, err
	}
	if _, err := rc.Push(tgz, RegistryHost+"/charts/podwarden:"+chartVer); err != nil {
		return nil, fmt.Errorf("helm push of commit %s's chart: %w", commit, err)
	}
	return &prevRelease{commit: commit, image: tag.Context().Digest(d.String()).String()}, nil
}

// watchScript samples, every 200 ms, each process of each container under
// /sys/fs/cgroup/kubepods: "P uptime container pid adj group" when it is
// not at 900 with memory.oom.group 0, and "T uptime agents" each round
// (agents: how many podwarden processes run). Builtins only, so a round
// costs no fork but pgrep's.
const watchScript = `while :; do
read up _ < /proc/uptime
echo "T $up $(pgrep -x podwarden | wc -l)"
for d in /sys/fs/cgroup/kubepods/pod*/* /sys/fs/cgroup/kubepods/*/pod*/*; do
	[ -f "$d/cgroup.procs" ] || continue
	read g < "$d/memory.oom.group" 2>/dev/null || continue
	while read p; do
		read a < /proc/$p/oom_score_adj 2>/dev/null || continue
		[ "$a" = 900 ] && [ "$g" = 0 ] || echo "P $up ${d##*/} $p $a $g"
	done < "$d/cgroup.procs"
done
usleep 200000
done`

// unprotected is one process's longest run of samples not at 900/0.
type unprotected struct {
	container string
	pid       int
	from, to  float64 // guest uptime; to is the first round it was not seen unprotected, or the end
}

// watchLog parses watchScript's output: each process's longest
// unprotected span, and the spans with no agent process.
func watchLog(out string) (spans map[string]*unprotected, noAgent [][2]float64, last float64) {
	spans = map[string]*unprotected{}
	open := map[string]*unprotected{}
	seen := map[string]bool{}
	keep := func(k string, s *unprotected) {
		if b := spans[k]; b == nil || s.to-s.from > b.to-b.from {
			spans[k] = s
		}
	}
	round := -1.0
	closeUnseen := func() {
		for k, s := range open {
			if !seen[k] && round >= 0 {
				s.to = round
				keep(k, s)
				delete(open, k)
			}
		}
	}
	downFrom := -1.0
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 3 && f[0] == "T":
			up, _ := strconv.ParseFloat(f[1], 64)
			// The round that just ended saw protected (or gone) what it
			// did not list: its span ends at that round.
			closeUnseen()
			seen = map[string]bool{}
			round = up
			agents, _ := strconv.Atoi(f[2])
			if agents == 0 && downFrom < 0 {
				downFrom = up
			} else if agents > 0 && downFrom >= 0 {
				noAgent = append(noAgent, [2]float64{downFrom, up})
				downFrom = -1
			}
			last = up
		case len(f) == 6 && f[0] == "P":
			up, _ := strconv.ParseFloat(f[1], 64)
			pid, _ := strconv.Atoi(f[3])
			k := f[2] + "/" + f[3]
			seen[k] = true
			if open[k] == nil {
				open[k] = &unprotected{container: f[2], pid: pid, from: up, to: -1}
			}
		}
	}
	if downFrom >= 0 {
		noAgent = append(noAgent, [2]float64{downFrom, last})
	}
	closeUnseen()
	for k, s := range open {
		s.to = last
		keep(k, s)
	}
	return spans, noAgent, last
}

func scenarioCrossVersion(t *testing.T, c *cluster, n *Node) {
	ctx := t.Context()
	if c.prev == nil {
		t.Fatal("the previous release was not built")
	}
	prev := c.helm
	prev.version = strings.TrimPrefix(prevVersion, "v")
	start := time.Now()
	if err := prev.install(ctx, t, release, nil); err != nil {
		t.Fatalf("helm install of commit %s's release: %v", c.prev.commit, err)
	}
	old := c.agentPod(ctx, t, nodeA, 1)
	if got := old.Spec.Containers[0].Image; got != c.prev.image {
		t.Fatalf("the previous release's agent runs %s, want %s", got, c.prev.image)
	}
	timing("scenario 6b: commit %s's agent Ready %s after helm install", c.prev.commit, time.Since(start).Round(100*time.Millisecond))
	for _, name := range []string{"nb", "lab"} {
		var v ContainerView
		if err := poll(ctx, 2*time.Minute, time.Second, func(ctx context.Context) (bool, error) {
			v, _ = c.view(ctx, t, n, usersNS, name)
			return v.protected(900), nil
		}); err != nil {
			t.Fatalf("%s not protected by the previous release: %s", name, v)
		}
	}

	if _, err := n.Sh(ctx, "setsid sh -c '"+strings.ReplaceAll(watchScript, "'", `'\''`)+"' > /tmp/watch.log 2>&1 < /dev/null & echo $! > /tmp/watch.pid"); err != nil {
		t.Fatalf("starting the watch: %v", err)
	}
	start = time.Now()
	if err := c.helm.upgrade(ctx, t, release, nil); err != nil {
		t.Fatalf("helm upgrade to %s: %v", releaseVersion, err)
	}
	// A pod that starts while the DaemonSet rolls: once the old agent is
	// on its way out, before the new one is Ready.
	if err := poll(ctx, 3*time.Minute, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
		p, err := c.admin.CoreV1().Pods(agentNS).Get(ctx, old.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err) || err == nil && p.DeletionTimestamp != nil, nil
	}); err != nil {
		t.Fatalf("the old agent pod was never replaced: %v", err)
	}
	createPod(ctx, t, c.admin, podSpec(usersNS, "roll", nodeA, latencyScript, "", ""))
	agent := c.agentPod(ctx, t, nodeA, 1)
	timing("scenario 6b: new agent Ready %s after helm upgrade", time.Since(start).Round(100*time.Millisecond))
	if got := agent.Spec.Containers[0].Image; got != c.rel.imageRef() {
		t.Errorf("after the upgrade the agent runs %s, want %s", got, c.rel.imageRef())
	}
	roll, err := waitRunning(ctx, c.admin, usersNS, "roll", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var v ContainerView
	if err := poll(ctx, 2*time.Minute, time.Second, func(ctx context.Context) (bool, error) {
		v, _ = c.view(ctx, t, n, usersNS, "roll")
		return v.protected(900), nil
	}); err != nil {
		t.Errorf("roll not protected after the rollout: %s", v)
	}
	// Past one reconcile interval more, for anything the rollout left.
	time.Sleep(protectionBound + 2*time.Second)
	out, err := n.Sh(ctx, "kill $(cat /tmp/watch.pid); cat /tmp/watch.log")
	if err != nil {
		t.Fatalf("reading the watch: %v", err)
	}
	spans, noAgent, last := watchLog(out)
	if last == 0 {
		t.Fatalf("the watch recorded nothing:\n%.2000s", out)
	}
	t.Logf("REPORT scenario 6b: no agent process on the node during %v (guest uptime s)", noAgent)
	targets := map[string]string{}
	for _, name := range []string{"nb", "lab"} {
		_, p := c.view(ctx, t, n, usersNS, name)
		targets[containerID(p, "main")] = name
	}
	targets[containerID(roll, "main")] = "roll"
	var keys []string
	for k := range spans {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s := spans[k]
		who, ok := targets[s.container]
		if !ok {
			continue // the agent's own pod, kube-system, sandboxes
		}
		// Unprotected time that counts: while an agent ran.
		d := s.to - s.from
		for _, gap := range noAgent {
			d -= max(0, min(s.to, gap[1])-max(s.from, gap[0]))
		}
		t.Logf("REPORT scenario 6b: %s pid %d unprotected %.1f s (%.1f s of it with an agent running), uptime %.1f-%.1f", who, s.pid, s.to-s.from, d, s.from, s.to)
		if who != "roll" && s.to-s.from > 0 {
			t.Errorf("%s's pid %d, running before the upgrade, was unprotected for %.1f s during the rollout", who, s.pid, s.to-s.from)
		}
		if time.Duration(d*float64(time.Second)) > protectionBound {
			t.Errorf("%s's pid %d was unprotected %.1f s while an agent ran, more than the %s bound", who, s.pid, d, protectionBound)
		}
	}
	if err := deletePod(ctx, c.admin, usersNS, "roll"); err != nil {
		t.Errorf("deleting roll: %v", err)
	}
	// Node B's scenario installs afresh.
	if err := c.helm.uninstall(t, release); err != nil {
		t.Errorf("helm uninstall: %v", err)
	}
}
