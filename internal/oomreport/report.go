package oomreport

import "time"

// Report is one kill explained: an OOM killer invocation of the kernel's,
// or a kill by another killer of the node (Killer).
type Report struct {
	// Killer is who killed: KillerKernel, KillerKubelet, KillerOomd,
	// KillerEarlyoom or KillerPodwarden.
	Killer string    `json:"killer"`
	Time   time.Time `json:"time,omitzero"`
	// Stamp is the wall-clock time of the first line as the log printed
	// it, when it could not be made a Time (a syslog date without a year,
	// a dmesg -T stamp in another locale).
	Stamp string `json:"stamp,omitempty"`
	// Monotonic is seconds since boot of the first line, 0 when the log
	// does not give it (no OOM report is printed at boot's first instant).
	Monotonic float64 `json:"monotonic_s,omitzero"`
	// Line is the input line the report starts on; 0 from /dev/kmsg.
	Line int `json:"line,omitempty"`
	// Kind is KindNode, KindCgroup or KindUnknown; its JSON key is
	// "scope" because "kind" names the document's type (docs/schemas).
	Kind            Kind             `json:"scope"`
	Kernel          string           `json:"kernel,omitempty"`
	Constraint      string           `json:"constraint,omitempty"`
	Nodemask        string           `json:"nodemask,omitempty"`
	Cpuset          string           `json:"cpuset,omitempty"`
	MemsAllowed     string           `json:"mems_allowed,omitempty"`
	OOMMemcg        string           `json:"oom_memcg,omitempty"`
	TaskMemcg       string           `json:"task_memcg,omitempty"`
	Invoker         Invoker          `json:"invoker,omitzero"`
	Memcg           *Memcg           `json:"memcg,omitempty"`
	MemInfo         map[string]int64 `json:"mem_info,omitempty"`
	Tasks           []Task           `json:"tasks,omitempty"`
	Victims         []Victim         `json:"victims"`
	GroupKillCgroup string           `json:"group_kill_cgroup,omitempty"`
	Reaped          []Reaped         `json:"reaped,omitempty"`
	PodUID          string           `json:"pod_uid,omitempty"`
	// PodNamespace and PodName are set by NamePods, when a caller knows
	// the pod; the kernel's log names pods by UID only.
	PodNamespace string `json:"pod_namespace,omitempty"`
	PodName      string `json:"pod_name,omitempty"`
	ContainerID  string `json:"container_id,omitempty"`
	// Reason is the killer's own words on why, for killers other than the
	// kernel (the eviction message, systemd-oomd's "due to ...", podwarden's
	// why, earlyoom's badness).
	Reason     string    `json:"reason,omitempty"`
	Diagnosis  Diagnosis `json:"diagnosis"`
	Incomplete bool      `json:"incomplete"`
	// Missing names what made the report incomplete.
	Missing []string `json:"missing,omitempty"`

	// memcgKill is set when the kill line said "Memory cgroup out of
	// memory", which tells the kind when the summary line is missing.
	memcgKill bool
	// killSeen is set by a "Killed process" line: victims can also come
	// from the oom-kill summary line alone, without their sizes.
	killSeen bool
	// preSummary is set by a line only kernels before 5.0 print (the
	// "Task in" line, the "[ pid ]" task header), which tells that no
	// oom-kill summary line is missing when the kernel release is not in
	// the input.
	preSummary bool
	// statsFor lists every "Memory cgroup stats for" header of a cgroup
	// v1 report (the kernel walks the OOM memcg's subtree, it first) with
	// the anon memory the cgroup's own stats gave, for attributing
	// reports whose other lines name no container.
	statsFor []statsPath
	// trace is what the call trace tells about the kind of OOM when
	// nothing else does (a paste cut before the kill line).
	trace traceKind
	// chosen is the task a pre-5.1 "Kill process N (comm) ... or
	// sacrifice child" line named, for a report whose kill line is cut.
	chosen string
}

type statsPath struct {
	path   string
	anonKB int64
}

type traceKind uint8

const (
	traceNone traceKind = iota
	traceNode
	traceMemcg
)

// Sized reports whether the victims' sizes are known: a report made from
// an oom-kill summary line alone (`dmesg | grep oom`) names the victim
// but not its memory.
func (r *Report) Sized() bool { return r.killSeen }

// Invoker is the task whose allocation triggered the OOM killer. Order
// and OOMScoreAdj are nil unless the invoker line was in the input (a
// paste that starts later may still give the pid, from the "CPU:" line).
type Invoker struct {
	Comm        string `json:"comm,omitempty"`
	PID         int    `json:"pid,omitempty"`
	GFPMask     string `json:"gfp_mask,omitempty"`
	Order       *int   `json:"order,omitempty"`
	OOMScoreAdj *int   `json:"oom_score_adj,omitempty"`
}

// Memcg holds the memory cgroup counters printed for a cgroup OOM.
type Memcg struct {
	UsageKB  int64            `json:"usage_kb"`
	LimitKB  int64            `json:"limit_kb"`
	Failcnt  int64            `json:"failcnt"`
	Swap     *Counter         `json:"swap,omitempty"`
	MemSwap  *Counter         `json:"memory_swap,omitempty"`
	Kmem     *Counter         `json:"kmem,omitempty"`
	StatsFor string           `json:"stats_for,omitempty"`
	Stats    map[string]int64 `json:"stats,omitempty"`
}

// Counter is one "usage, limit, failcnt" line.
type Counter struct {
	UsageKB int64 `json:"usage_kb"`
	LimitKB int64 `json:"limit_kb"`
	Failcnt int64 `json:"failcnt"`
}

// Task is one row of the "Tasks state" table; memory values are in pages
// as the kernel prints them. A column the table's layout lacks (rss_anon
// before 6.8) is -1 here and absent from the JSON (MarshalJSON).
type Task struct {
	PID           int    `json:"pid"`
	UID           int    `json:"uid"`
	TGID          int    `json:"tgid"`
	TotalVM       int64  `json:"total_vm"`
	RSS           int64  `json:"rss"`
	RSSAnon       int64  `json:"rss_anon"`
	RSSFile       int64  `json:"rss_file"`
	RSSShmem      int64  `json:"rss_shmem"`
	PgtablesBytes int64  `json:"pgtables_bytes"`
	Swapents      int64  `json:"swapents"`
	OOMScoreAdj   int    `json:"oom_score_adj"`
	Name          string `json:"name"`

	// has marks the columns the layout printed (taskHas* bits).
	has uint16
}

// Victim is one killed process. A field its kill line did not print
// (shmem-rss before 4.x, UID before 4.19, pgtables and oom_score_adj
// before 5.x, every size when only the oom-kill summary line named it)
// is 0 here and absent from the JSON (MarshalJSON).
type Victim struct {
	PID         int    `json:"pid"`
	Comm        string `json:"comm"`
	UID         int    `json:"uid"`
	TotalVMKB   int64  `json:"total_vm_kb"`
	AnonRSSKB   int64  `json:"anon_rss_kb"`
	FileRSSKB   int64  `json:"file_rss_kb"`
	ShmemRSSKB  int64  `json:"shmem_rss_kb"`
	PgtablesKB  int64  `json:"pgtables_kb"`
	OOMScoreAdj int    `json:"oom_score_adj"`
	// RSSKB is the resident memory a killer other than the kernel
	// reported (earlyoom's VmRSS, podwarden's rss_bytes).
	RSSKB int64 `json:"rss_kb"`
	// Signals are what a killer other than the kernel sent, in order.
	Signals []string `json:"signals,omitempty"`
	Cgroup  string   `json:"cgroup,omitempty"`
	PodUID  string   `json:"pod_uid,omitempty"`
	// PodNamespace and PodName are set by NamePods.
	PodNamespace string `json:"pod_namespace,omitempty"`
	PodName      string `json:"pod_name,omitempty"`
	ContainerID  string `json:"container_id,omitempty"`
	// GroupMember marks processes killed only because of memory.oom.group.
	GroupMember bool `json:"group_member,omitempty"`

	// has marks the fields the input printed (victimHas* bits).
	has uint8
}

// Reaped is an oom_reaper result line.
type Reaped struct {
	PID        int    `json:"pid"`
	Comm       string `json:"comm"`
	AnonRSSKB  int64  `json:"anon_rss_kb"`
	FileRSSKB  int64  `json:"file_rss_kb"`
	ShmemRSSKB int64  `json:"shmem_rss_kb"`
}

// Diagnosis codes.
const (
	DiagCgroupLimit   = "cgroup_limit"
	DiagNodeOOM       = "node_oom"
	DiagProtectionGap = "protection_gap"
	DiagGroupKill     = "group_kill"
	// DiagEviction: the kubelet evicted a pod under node pressure.
	DiagEviction = "eviction"
	// DiagEarlyKill: a daemon (earlyoom, systemd-oomd, podwarden) killed
	// before the kernel's OOM killer had to.
	DiagEarlyKill = "early_kill"
)

// Killers of a node.
const (
	KillerKernel    = "kernel"
	KillerKubelet   = "kubelet"
	KillerOomd      = "systemd-oomd"
	KillerEarlyoom  = "earlyoom"
	KillerPodwarden = "podwarden"
)

// Diagnosis is the verdict on a report: a code per finding and a sentence.
type Diagnosis struct {
	Codes   []string `json:"codes"`
	Summary string   `json:"summary"`
}

// NamePods sets the namespace and name of the report's pod and of each
// victim's, from pod (the kernel names pods by UID only; the node knows
// their names), and has the diagnosis name the pod as namespace/name.
func (r *Report) NamePods(pod func(uid string) (namespace, name string, ok bool)) {
	named := false
	set := func(uid string, ns, name *string) {
		if uid == "" {
			return
		}
		if n, m, ok := pod(uid); ok && m != "" {
			*ns, *name, named = n, m, true
		}
	}
	set(r.PodUID, &r.PodNamespace, &r.PodName)
	for i := range r.Victims {
		set(r.Victims[i].PodUID, &r.Victims[i].PodNamespace, &r.Victims[i].PodName)
	}
	if named {
		r.Diagnosis = diagnose(r)
	}
}

// pod is how the diagnosis names the report's pod.
func (r *Report) pod() string {
	if r.PodName != "" {
		return r.PodNamespace + "/" + r.PodName
	}
	return r.PodUID
}

// RSS is the resident memory a killer other than the kernel reported, in
// kB, and whether it did.
func (v *Victim) RSS() (int64, bool) { return v.RSSKB, v.has&victimHasRSS != 0 }

// Adj is the victim's oom_score_adj, and whether the input gave it (its
// kill line from 5.4 on, else its task table row).
func (v *Victim) Adj() (int, bool) { return v.OOMScoreAdj, v.has&victimHasAdj != 0 }

// Kind is which OOM a report is: what ran out. Its values are the kind
// label of the agent's podwarden_oom_kills_total and the "scope" of
// podwarden events' JSON, so they are part of the interface.
type Kind string

const (
	// KindNode: the node ran out of memory (the global OOM killer).
	KindNode Kind = "node"
	// KindCgroup: a memory cgroup's limit (the container's or an
	// ancestor's) was reached.
	KindCgroup Kind = "cgroup"
	// KindUnknown: only the invoker was printed; nothing says which.
	KindUnknown Kind = "unknown"
)

func (k Kind) String() string { return string(k) }
