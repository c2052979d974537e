package kubeevent

import "testing"

func TestPodMessage(t *testing.T) {
	for name, tc := range map[string]struct {
		o    OOM
		want string
	}{
		"node oom, single": {
			o:    OOM{Comm: "python", PID: 1234, Container: "notebook", Kind: KindNode, AnonRSSBytes: 7_623_000_000},
			want: "OOMKilled process python (pid 1234) in container notebook: node out of memory, 7.1 GiB anon; other processes kept running",
		},
		"cgroup oom, group kill": {
			o:    OOM{Comm: "php-fpm", PID: 77, Container: "web", Kind: KindCgroup, AnonRSSBytes: 300 << 20, GroupKill: true, Bystanders: 11},
			want: "OOMKilled process php-fpm (pid 77) in container web: memory limit reached, 300.0 MiB anon; the whole container was killed (memory.oom.group=1) with 11 other processes",
		},
		"one bystander": {
			o:    OOM{Comm: "java", PID: 5, Container: "app", Kind: KindCgroup, GroupKill: true, Bystanders: 1},
			want: "OOMKilled process java (pid 5) in container app: memory limit reached; the whole container was killed (memory.oom.group=1) with 1 other process",
		},
		"counted in memory.events": {
			o:    OOM{Container: "notebook", Kills: 1},
			want: "OOMKilled 1 process in container notebook: out of memory; the kernel log is not readable here, so the process is not named (memory.events)",
		},
		"several counted, limit": {
			o:    OOM{Container: "web", Kind: KindCgroup, Kills: 3},
			want: "OOMKilled 3 processes in container web: memory limit reached; the kernel log is not readable here, so the process is not named (memory.events)",
		},
		"unknown comm and kind": {
			o:    OOM{PID: 9},
			want: "OOMKilled process ? (pid 9): out of memory; other processes kept running",
		},
	} {
		t.Run(name, func(t *testing.T) {
			if got := PodMessage(tc.o); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestNodeMessage(t *testing.T) {
	for _, tc := range []struct {
		o    OOM
		want string
	}{
		{OOM{HostVictims: []string{"sshd (pid 812)", "chronyd (pid 640)"}}, "node out of memory: the OOM killer killed host processes sshd (pid 812), chronyd (pid 640)"},
		{OOM{Comm: "sshd", PID: 812, AnonRSSBytes: 2048}, "node out of memory: the OOM killer killed host process sshd (pid 812) (2.0 KiB anon)"},
		{OOM{}, "node out of memory: the OOM killer killed host processes"},
	} {
		if got := NodeMessage(tc.o); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
}
