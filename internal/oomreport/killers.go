package oomreport

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"podwarden/internal/kmsg"
)

// killers reads the kills of a node's other killers from their log lines,
// in the same records as the kernel's: the kubelet's evictions,
// systemd-oomd, earlyoom and podwarden's own early action. Each kill is a
// Report of its own, the same shape as the kernel's, with Killer set.
type killers struct {
	// reclaim is the resource the kubelet last said it must evict pods
	// to reclaim ("memory", "ephemeral-storage").
	reclaim string
	// evicting lists the pods an "Evicting pod" line reported, so that
	// the "evicted successfully" line after it is not a second kill.
	evicting map[string]bool
}

// maxEvicting bounds killers.evicting: an eviction's two lines are
// seconds apart, so forgetting old ones costs at most a repeated report.
const maxEvicting = 256

// mayKill is a cheap test that text may be another killer's line: it runs
// on every bare and every other program's record, so its first byte
// decides which one search, if any, is made (a scan per line of a bare
// paste cost a quarter more CPU).
func mayKill(text string) bool {
	if len(text) < 8 {
		return false
	}
	switch c := text[0]; {
	case c == 's':
		return strings.HasPrefix(text, "sending SIG")
	case c == 'K':
		return strings.HasPrefix(text, "Killed /")
	case strings.IndexByte("IWEF", c) >= 0 && text[1] >= '0' && text[1] <= '9':
		// klog's header: the kubelet.
		return strings.Contains(text, "eviction_manager.go:")
	case c >= '0' && c <= '9', c == 't', c == 'l', c == 'm', c == '{':
		// A container log line, or slog's text or JSON: the agent.
		return strings.Contains(text, "ended process under memory pressure")
	}
	return false
}

// parse makes a report of r when it is another killer's kill line.
func (k *killers) parse(r *kmsg.Record) (Report, bool) {
	text := firstLine(r.Text)
	if !mayKill(text) {
		return Report{}, false
	}
	rep := Report{Time: r.Time, Stamp: r.Stamp, Monotonic: r.Monotonic.Seconds(), Line: r.Line, Victims: []Victim{}}
	var ok bool
	switch {
	case strings.HasPrefix(text, "sending SIG"):
		ok = parseEarlyoom(text, &rep)
	case strings.HasPrefix(text, "Killed /"):
		ok = parseOomd(text, &rep)
	case strings.Contains(text, "eviction_manager.go:"):
		ok = k.parseKubelet(text, &rep)
	default:
		ok = parsePodwarden(text, &rep)
	}
	if !ok {
		return Report{}, false
	}
	rep.Diagnosis = diagnose(&rep)
	return rep, true
}

// parseEarlyoom reads earlyoom's kill line, in the forms of its releases:
//
//	sending SIGTERM to process 4242 uid 1000 "python3": badness 900, VmRSS 7012 MiB
//	sending SIGKILL to process 4242 uid 1000 "python3": oom_score 900, oom_score_adj 0, VmRSS 7012 MiB, cmdline "python3 x.py"
//
// The name may hold quotes: the fields start at the first `": ` that a
// field name follows.
func parseEarlyoom(text string, rep *Report) bool {
	rest, _ := strings.CutPrefix(text, "sending ")
	sig, rest, ok := strings.Cut(rest, " to process ")
	if !ok || !isSignal(sig) {
		return false
	}
	pid, rest, ok := cutInt(rest, " uid ")
	if !ok || pid <= 0 {
		return false
	}
	uid, rest, ok := cutInt(rest, ` "`)
	if !ok || uid < 0 {
		return false
	}
	name, fields, ok := cutName(rest)
	if !ok {
		return false
	}
	v := Victim{PID: int(pid), Comm: name, UID: int(uid), Signals: []string{sig}, has: victimHasUID}
	var why []string
	for _, f := range strings.Split(fields, ", ") {
		key, val, _ := strings.Cut(f, " ")
		switch key {
		case "VmRSS":
			if n, ok := strings.CutSuffix(val, " MiB"); ok {
				if mib, err := strconv.ParseInt(n, 10, 64); err == nil && mib >= 0 {
					v.RSSKB, v.has = mib*1024, v.has|victimHasRSS
				}
			}
		case "oom_score_adj":
			if adj, err := strconv.Atoi(val); err == nil && adj >= -1000 && adj <= 1000 {
				v.OOMScoreAdj, v.has = adj, v.has|victimHasAdj
			}
		case "badness", "oom_score":
			why = append(why, f)
		}
		if key == "cmdline" {
			break // the last field, and it may hold ", "
		}
	}
	rep.Killer, rep.Kind, rep.Reason = KillerEarlyoom, KindNode, strings.Join(why, ", ")
	rep.Victims = append(rep.Victims, v)
	return true
}

// cutName cuts earlyoom's quoted process name off s (the opening quote
// already cut) at the first `": ` a known field follows.
func cutName(s string) (name, fields string, ok bool) {
	for i := 0; ; {
		j := strings.Index(s[i:], `": `)
		if j < 0 {
			return "", "", false
		}
		i += j
		if f := s[i+3:]; strings.HasPrefix(f, "badness ") || strings.HasPrefix(f, "oom_score ") || strings.HasPrefix(f, "VmRSS ") {
			return s[:i], f, true
		}
		i += 3
	}
}

func isSignal(s string) bool {
	if len(s) < 4 || len(s) > 12 || !strings.HasPrefix(s, "SIG") {
		return false
	}
	for i := 3; i < len(s); i++ {
		if (s[i] < 'A' || s[i] > 'Z') && (s[i] < '0' || s[i] > '9') {
			return false
		}
	}
	return true
}

// cutInt reads a decimal integer up to sep.
func cutInt(s, sep string) (int64, string, bool) {
	n, rest, ok := strings.Cut(s, sep)
	if !ok {
		return 0, "", false
	}
	i, err := strconv.ParseInt(n, 10, 64)
	return i, rest, err == nil
}

// parseOomd reads systemd-oomd's kill line, which names the cgroup it
// killed whole and why:
//
//	Killed /system.slice/x.service due to memory pressure for /system.slice being 82.18% > 50.00% for > 20s with reclaim activity
//	Killed /user.slice/.../app.scope due to memory used (7951347712) / total (8147963904) and swap used (2001600512) / total (2147479552) being more than 90.00%
func parseOomd(text string, rep *Report) bool {
	rest, _ := strings.CutPrefix(text, "Killed ")
	cg, why, ok := strings.Cut(rest, " due to ")
	if !ok || cg == "" || strings.ContainsAny(cg, " \t") {
		return false
	}
	switch {
	case strings.HasPrefix(why, "memory pressure for "):
		mon, _, ok := strings.Cut(strings.TrimPrefix(why, "memory pressure for "), " being ")
		if !ok {
			return false
		}
		rep.OOMMemcg = mon
	case strings.HasPrefix(why, "memory used"):
	default:
		return false
	}
	rep.Killer, rep.Kind, rep.GroupKillCgroup, rep.Reason = KillerOomd, KindCgroup, cg, why
	o := parseOwner(cg)
	rep.PodUID, rep.ContainerID = o.PodUID, o.ContainerID
	return true
}

// parseKubelet reads the eviction manager's klog lines (kubelet 1.20 and
// later log them structured):
//
//	I1207 04:12:09.123456    1234 eviction_manager.go:349] "Eviction manager: must evict pod(s) to reclaim" resourceName="memory"
//	I1207 04:12:09.223456    1234 eviction_manager.go:574] "Evicting pod" pod="ml/train-7" podUID="6f1c..." message="The node was low on resource: memory. ..."
//	I1207 04:12:11.523456    1234 eviction_manager.go:595] "Eviction manager: pod is evicted successfully" pod="ml/train-7"
//
// "Evicting pod" is logged at -v=3 only; without it, the success line is
// the kill. Kubelets before 1.20 logged it unstructured, the pod as
// format.Pod prints it (NAME_NAMESPACE(UID): neither may hold "_"):
//
//	I1207 04:12:11.523456    1234 eviction_manager.go:578] eviction manager: pod train-7_ml(6f1c...) is evicted successfully
func (k *killers) parseKubelet(text string, rep *Report) bool {
	_, rest, ok := strings.Cut(text, "eviction_manager.go:")
	if !ok {
		return false
	}
	if _, rest, ok = strings.Cut(rest, "] "); !ok {
		return false
	}
	if desc, ok := strings.CutPrefix(rest, "eviction manager: pod "); ok {
		desc, ok = strings.CutSuffix(desc, " is evicted successfully")
		name, nsUID, _ := strings.Cut(desc, "_")
		ns, uid, _ := strings.Cut(nsUID, "(")
		uid, closed := strings.CutSuffix(uid, ")")
		if !ok || !closed || name == "" || ns == "" || uid == "" {
			return false
		}
		rep.Killer, rep.Kind, rep.PodNamespace, rep.PodName, rep.PodUID = KillerKubelet, KindNode, ns, name, uid
		k.stamp(text, rep)
		return true
	}
	msg, kv, ok := cutQuoted(rest)
	if !ok {
		return false
	}
	attrs := logfmt(kv)
	pod := attrs["pod"]
	switch msg {
	case "Eviction manager: must evict pod(s) to reclaim":
		k.reclaim = attrs["resourceName"]
		return false
	case "Evicting pod":
		if pod == "" {
			return false
		}
		if k.evicting == nil || len(k.evicting) >= maxEvicting {
			k.evicting = map[string]bool{}
		}
		k.evicting[pod] = true
		rep.PodUID, rep.Reason = attrs["podUID"], strings.TrimSpace(attrs["message"])
	case "Eviction manager: pod is evicted successfully":
		if pod == "" || k.evicting[pod] {
			delete(k.evicting, pod)
			return false
		}
	default:
		return false
	}
	ns, name, ok := strings.Cut(pod, "/")
	if !ok || ns == "" || name == "" {
		return false
	}
	rep.Killer, rep.Kind, rep.PodNamespace, rep.PodName = KillerKubelet, KindNode, ns, name
	if rep.Reason == "" && k.reclaim != "" {
		rep.Reason = "the node was low on " + k.reclaim
	}
	k.stamp(text, rep)
	return true
}

// stamp gives a kubelet.log line without a carrier klog's own stamp,
// which has no year.
func (k *killers) stamp(text string, rep *Report) {
	if rep.Stamp == "" && rep.Time.IsZero() && len(text) > 21 && strings.IndexByte("IWEF", text[0]) >= 0 {
		rep.Stamp = text[1:21]
	}
}

// parsePodwarden reads the agent's log line of an early kill
// (internal/preempt logKill), as slog's text or JSON handler wrote it,
// bare, in a container log (CRI's "TIME stderr F ..." prefix) or in the
// journal:
//
//	time=2026-12-07T04:12:09.123Z level=WARN msg="ended process under memory pressure" pod=ml/train-7 container=trainer cgroup=/kubepods/... scope=container comm=python pid=4242 rss_bytes=734003200 signals=SIGTERM,SIGKILL ... why="..."
func parsePodwarden(text string, rep *Report) bool {
	var attrs map[string]string
	if i := strings.Index(text, `{"`); i >= 0 && strings.Contains(text[i:], `"msg":"ended process under memory pressure"`) {
		attrs = jsonAttrs(text[i:])
	} else if i := strings.Index(text, "msg="); i >= 0 {
		start := strings.LastIndex(text[:i], "time=")
		if start < 0 {
			start = i
		}
		attrs = logfmt(text[start:])
	}
	if attrs["msg"] != "ended process under memory pressure" {
		return false
	}
	pid, err := strconv.Atoi(attrs["pid"])
	if err != nil || pid <= 0 {
		return false
	}
	v := Victim{PID: pid, Comm: attrs["comm"], Cgroup: attrs["cgroup"]}
	if n, err := strconv.ParseInt(attrs["rss_bytes"], 10, 64); err == nil && n >= 0 {
		v.RSSKB, v.has = n/1024, v.has|victimHasRSS
	}
	if s := attrs["signals"]; s != "" {
		v.Signals = strings.Split(s, ",")
	}
	o := parseOwner(v.Cgroup)
	v.PodUID, v.ContainerID = o.PodUID, o.ContainerID
	rep.Killer, rep.Kind, rep.Reason = KillerPodwarden, KindNode, attrs["why"]
	if attrs["scope"] == "container" {
		rep.Kind, rep.OOMMemcg = KindCgroup, v.Cgroup
	}
	rep.TaskMemcg, rep.PodUID, rep.ContainerID = v.Cgroup, o.PodUID, o.ContainerID
	if ns, name, ok := strings.Cut(attrs["pod"], "/"); ok && ns != "" && name != "" {
		rep.PodNamespace, rep.PodName = ns, name
		v.PodNamespace, v.PodName = ns, name
	}
	if rep.Time.IsZero() && rep.Stamp == "" {
		if t, err := time.Parse(time.RFC3339Nano, attrs["time"]); err == nil {
			rep.Time = t
		}
	}
	rep.Victims = append(rep.Victims, v)
	return true
}

// cutQuoted reads a Go-quoted string at the start of s.
func cutQuoted(s string) (string, string, bool) {
	q, err := strconv.QuotedPrefix(s)
	if err != nil {
		return "", "", false
	}
	u, err := strconv.Unquote(q)
	return u, s[len(q):], err == nil
}

// logfmt reads key=value pairs, values bare or Go-quoted (slog's text
// handler and klog quote the same way). Later keys win.
func logfmt(s string) map[string]string {
	m := map[string]string{}
	for {
		s = strings.TrimLeft(s, " ")
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || strings.IndexByte(s[:eq], ' ') >= 0 {
			// No key here: skip a word (a bare message word, a [list]).
			sp := strings.IndexByte(s, ' ')
			if sp < 0 {
				return m
			}
			s = s[sp:]
			continue
		}
		key, rest := s[:eq], s[eq+1:]
		if v, after, ok := cutQuoted(rest); ok {
			m[key], s = v, after
			continue
		}
		v, after, _ := strings.Cut(rest, " ")
		m[key], s = v, after
	}
}

// jsonAttrs reads a JSON object's top-level strings and numbers.
func jsonAttrs(s string) map[string]string {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var raw map[string]any
	if d.Decode(&raw) != nil {
		return nil
	}
	m := make(map[string]string, len(raw))
	for k, v := range raw {
		switch x := v.(type) {
		case string:
			m[k] = x
		case json.Number:
			m[k] = x.String()
		}
	}
	return m
}

// diagnoseKiller is the verdict on another killer's kill.
func diagnoseKiller(r *Report) Diagnosis {
	d := Diagnosis{Codes: []string{DiagEarlyKill}}
	var b bytes.Buffer
	pod := r.pod()
	switch r.Killer {
	case KillerKubelet:
		d.Codes[0] = DiagEviction
		b.WriteString("the kubelet evicted pod ")
		b.WriteString(pod)
		if r.Reason != "" {
			b.WriteString(": ")
			b.WriteString(strings.TrimSuffix(r.Reason, "."))
		}
	case KillerOomd:
		b.WriteString("systemd-oomd killed every process in ")
		b.WriteString(r.GroupKillCgroup)
		if pod != "" {
			b.WriteString(" (pod ")
			b.WriteString(pod)
			b.WriteString(")")
		}
		b.WriteString(" due to ")
		b.WriteString(r.Reason)
	default:
		b.WriteString(r.Killer)
		if r.Killer == KillerPodwarden {
			b.WriteString(" ended ")
		} else {
			b.WriteString(" sent ")
			if len(r.Victims) > 0 && len(r.Victims[0].Signals) > 0 {
				b.WriteString(r.Victims[0].Signals[0])
			}
			b.WriteString(" to ")
		}
		if len(r.Victims) > 0 {
			v := &r.Victims[0]
			b.WriteString(v.Comm)
			b.WriteString(" (pid ")
			b.WriteString(strconv.Itoa(v.PID))
			if kb, ok := v.RSS(); ok {
				b.WriteString(", ")
				b.Write(appendKiB(nil, kb))
				b.WriteString(" resident")
			}
			b.WriteString(")")
			if pod != "" {
				b.WriteString(" in pod ")
				b.WriteString(pod)
			}
			if r.Killer == KillerPodwarden && len(v.Signals) > 0 {
				b.WriteString(" with ")
				b.WriteString(strings.Join(v.Signals, ", "))
			}
		}
		b.WriteString(" before the kernel's OOM killer had to act")
		if r.Reason != "" {
			b.WriteString(": ")
			b.WriteString(r.Reason)
		}
	}
	d.Summary = b.String()
	return d
}
