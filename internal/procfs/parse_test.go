package procfs

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// Copied from this machine's /proc (kernel 6.18): a sleep process and the
// status of pid 1.
const (
	liveStat   = "11208 (sleep) S 11205 11205 669 0 -1 4194304 136 0 0 0 0 0 0 0 20 0 1 0 66412 2990080 415 18446744073709551615 94654161903616 94654161921545 140727660355280 0 0 0 0 6 0 1 0 0 17 0 0 0 0 0 0 94654161935632 94654161936896 94654705692672 140727660358343 140727660358353 140727660358353 140727660359657 0\n"
	liveStatus = "Name:\tprocess_api\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t1\nNgid:\t0\nPid:\t1\nPPid:\t0\nTracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nFDSize:\t512\nGroups:\t \nNStgid:\t1\nNSpid:\t1\nNSpgid:\t0\nNSsid:\t0\nKthread:\t0\n" +
		"VmPeak:\t   51636 kB\nVmSize:\t   48152 kB\nVmLck:\t   48120 kB\nVmPin:\t       0 kB\nVmHWM:\t   17564 kB\nVmRSS:\t   16844 kB\nRssAnon:\t   10472 kB\nRssFile:\t       8 kB\nRssShmem:\t    6364 kB\nVmData:\t   40636 kB\nVmStk:\t     132 kB\nVmExe:\t    5320 kB\nVmLib:\t       8 kB\nVmPTE:\t     132 kB\nVmSwap:\t       0 kB\nHugetlbPages:\t       0 kB\n" +
		"CoreDumping:\t0\nTHP_enabled:\t1\nuntag_mask:\t0xffffffffffffffff\nThreads:\t13\nSigQ:\t0/96365\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000001000\nSigCgt:\t00000000000004e8\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\nCapBnd:\t000001fffeffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t0\nSeccomp:\t0\nSeccomp_filters:\t0\n" +
		"Speculation_Store_Bypass:\tthread vulnerable\nSpeculationIndirectBranch:\tconditional enabled\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\nMems_allowed:\t00000000,00000001\nMems_allowed_list:\t0\nvoluntary_ctxt_switches:\t355\nnonvoluntary_ctxt_switches:\t29\n"
)

func TestParseStat(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    Proc
		wantErr string
	}{
		"live": {
			in:   liveStat,
			want: Proc{PID: 11208, PPID: 11205, Comm: "sleep", State: 'S', Threads: 1, StartTime: 66412},
		},
		"kernel thread": {
			in:   "11 (kworker/0:1-virtio_vsock) I 2 0 0 0 -1 69238880 0 0 0 0 0 17 0 0 20 0 1 0 9 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
			want: Proc{PID: 11, PPID: 2, Comm: "kworker/0:1-virtio_vsock", State: 'I', Threads: 1, StartTime: 9, Kernel: true},
		},
		"comm with parens and spaces": {
			in:   "42 (a) S 1 (b c)) R 7 42 42 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 3 0 1\n",
			want: Proc{PID: 42, PPID: 7, Comm: "a) S 1 (b c)", State: 'R', Threads: 3, StartTime: 1},
		},
		"empty comm": {
			in:   "5 () S 1 5 5 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1",
			want: Proc{PID: 5, PPID: 1, State: 'S', Threads: 1, StartTime: 1},
		},
		"zombie": {
			in:   "11265 (python3) Z 11224 11222 669 0 -1 4227148 223 0 0 0 0 0 0 0 20 0 1 0 66591 0 0 18446744073709551615 0 0 0 0 0 0 0 16781312 2 1 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
			want: Proc{PID: 11265, PPID: 11224, Comm: "python3", State: 'Z', Threads: 1, StartTime: 66591, Exiting: true},
		},
		// In do_exit, memory perhaps released, not yet a zombie: PF_EXITING.
		"exiting": {
			in:   "4770 (slowhog) R 4700 4770 4770 0 -1 4194308 0 0 0 0 0 0 0 0 20 0 1 0 9000 0 0\n",
			want: Proc{PID: 4770, PPID: 4700, Comm: "slowhog", State: 'R', Threads: 1, StartTime: 9000, Exiting: true},
		},
		"empty":           {in: "", wantErr: "no (comm)"},
		"no close paren":  {in: "1 (init S 0 1", wantErr: "no (comm)"},
		"paren before":    {in: ") 1 (init", wantErr: "no (comm)"},
		"bad pid":         {in: "x1 (init) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1", wantErr: `invalid pid "x1 "`},
		"truncated":       {in: "77 (bash) S 1 77\n", wantErr: "want at least 22"},
		"bad ppid":        {in: "1 (init) S -x 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1", wantErr: `invalid ppid "-x"`},
		"long state":      {in: "1 (init) SS 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1", wantErr: "invalid state"},
		"bad flags":       {in: "1 (init) S 0 1 1 0 -1 -4 0 0 0 0 0 0 0 0 20 0 1 0 1", wantErr: "invalid flags"},
		"bad threads":     {in: "1 (init) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 one 0 1", wantErr: "invalid num_threads"},
		"bad starttime":   {in: "1 (init) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 -1", wantErr: "invalid starttime"},
		"no space":        {in: "1 (init)S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1", wantErr: "field 3: unexpected"},
		"pid overflow":    {in: "99999999999999999999 (a) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1", wantErr: "invalid pid"},
		"double space":    {in: "1 (init) S  0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1", wantErr: `invalid ppid ""`},
		"only fields one": {in: "1 (init) S", wantErr: "3 fields"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var got Proc
			err := parseStat([]byte(tc.in), &got)
			checkErr(t, err, tc.wantErr)
			if tc.wantErr == "" && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    status
		wantErr string
	}{
		"live": {
			in: liveStatus,
			want: status{uid: 0, haveUID: true, state: 'S', ppid: 0, havePPid: true, haveKthread: true,
				threads: 13, haveThreads: true, nspid: 1,
				rssAnon: 10472 << 10, rssFile: 8 << 10, rssShmem: 6364 << 10, pgTables: 132 << 10},
		},
		"kernel thread has no memory lines": {
			in:   "Name:\tkthreadd\nState:\tS (sleeping)\nPPid:\t0\nUid:\t0\t0\t0\t0\nKthread:\t1\nThreads:\t1\n",
			want: status{haveUID: true, state: 'S', havePPid: true, haveKthread: true, kthread: true, threads: 1, haveThreads: true},
		},
		"old kernel without Kthread or Rss lines": {
			in:   "Name:\tbash\nState:\tR (running)\nPPid:\t9\nUid:\t1000\t1000\t1000\t1000\nVmRSS:\t 100 kB\nVmPTE:\t 8 kB\nVmSwap:\t 4 kB\n",
			want: status{uid: 1000, haveUID: true, state: 'R', ppid: 9, havePPid: true, pgTables: 8 << 10, swap: 4 << 10},
		},
		"nested pid namespaces: the last NSpid": {
			in:   "Uid:\t0\nNSpid:\t4242\t17\t1\n",
			want: status{haveUID: true, nspid: 1},
		},
		"bad NSpid": {in: "Uid:\t0\nNSpid:\t12 x\n", wantErr: `invalid integer "x"`},
		"no trailing newline": {
			in:   "Uid:\t7\t7\t7\t7\nRssAnon:\t1 kB",
			want: status{uid: 7, haveUID: true, rssAnon: 1024},
		},
		"blank lines": {in: "\n\nUid:\t7\n\n", want: status{uid: 7, haveUID: true}},
		"bad uid": {
			in:      "Name:\tbash\nUid:\tx\t0\t0\t0\n",
			wantErr: `line "Uid:\tx\t0\t0\t0": invalid integer "x"`,
		},
		"no uid":        {in: "Name:\tbash\nState:\tZ (zombie)\n", wantErr: "incomplete status"},
		"no colon":      {in: "Uid:\t0\ngarbage\n", wantErr: `line "garbage": no colon`},
		"bad unit":      {in: "Uid:\t0\nRssAnon:\t10 MB\n", wantErr: `unknown unit "MB"`},
		"bad number":    {in: "Uid:\t0\nVmSwap:\t-1 kB\n", wantErr: `invalid number "-1"`},
		"overflow kB":   {in: "Uid:\t0\nVmPTE:\t18446744073709551615 kB\n", wantErr: "overflows"},
		"empty state":   {in: "Uid:\t0\nState:\t\n", wantErr: "empty state"},
		"bad kthread":   {in: "Uid:\t0\nKthread:\tyes\n", wantErr: "invalid integer"},
		"bad ppid line": {in: "Uid:\t0\nPPid:\t\n", wantErr: `invalid integer ""`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseStatus([]byte(tc.in))
			checkErr(t, err, tc.wantErr)
			if tc.wantErr == "" && got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestStatusApply(t *testing.T) {
	s := status{uid: 5, haveUID: true, state: 'S', ppid: 2, havePPid: true, threads: 4, haveThreads: true, rssAnon: 1}
	t.Run("with stat", func(t *testing.T) {
		p := Proc{PID: 10, PPID: 9, State: 'R', Threads: 1}
		s.apply(&p, true)
		want := Proc{PID: 10, PPID: 9, State: 'R', Threads: 1, UID: 5, RSSAnon: 1}
		if !reflect.DeepEqual(p, want) {
			t.Errorf("got %+v, want %+v", p, want)
		}
	})
	t.Run("without stat or Kthread line, a child of pid 2 is a kernel thread", func(t *testing.T) {
		p := Proc{PID: 10}
		s.apply(&p, false)
		want := Proc{PID: 10, PPID: 2, State: 'S', Threads: 4, UID: 5, RSSAnon: 1, Kernel: true}
		if !reflect.DeepEqual(p, want) {
			t.Errorf("got %+v, want %+v", p, want)
		}
	})
	t.Run("Kthread line wins over the pid 2 rule", func(t *testing.T) {
		s := s
		s.haveKthread = true
		p := Proc{PID: 10}
		s.apply(&p, false)
		if p.Kernel {
			t.Errorf("Kernel = true for Kthread: 0")
		}
	})
}

func TestParseCgroup(t *testing.T) {
	tests := map[string]struct {
		in             string
		wantV2, wantV1 string
		wantErr        string
	}{
		"v2 only": {in: "0::/system.slice/crio.service\n", wantV2: "/system.slice/crio.service"},
		"v2 root": {in: "0::/\n", wantV2: "/"},
		"this host (hybrid)": {
			in:     "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/59206d649c453b5bb4b90ea71275e1a8\n3:cpuset:/\n0::/\n",
			wantV2: "/", wantV1: "/process_api/59206d649c453b5bb4b90ea71275e1a8",
		},
		"v1 only, shared hierarchy": {in: "5:cpu,memory,pids:/kubepods/pod1/abc\n1:name=systemd:/x\n", wantV1: "/kubepods/pod1/abc"},
		"colon in path":             {in: "0::/a:b:c\n", wantV2: "/a:b:c"},
		"memory_recursiveprot is not memory": {
			in: "3:memory_x:/no\n0::/\n", wantV2: "/",
		},
		"empty":        {in: ""},
		"one colon":    {in: "0:/x\n", wantErr: "want id:controllers:path"},
		"no colon":     {in: "garbage\n", wantErr: "want id:controllers:path"},
		"bad id":       {in: "x::/\n", wantErr: "invalid hierarchy id"},
		"blank lines":  {in: "\n0::/a\n\n", wantV2: "/a"},
		"deleted path": {in: "0::/kubepods/pod1 (deleted)\n", wantV2: "/kubepods/pod1 (deleted)"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v2, v1, err := parseCgroup([]byte(tc.in))
			checkErr(t, err, tc.wantErr)
			if tc.wantErr == "" && (v2 != tc.wantV2 || v1 != tc.wantV1) {
				t.Errorf("got (%q, %q), want (%q, %q)", v2, v1, tc.wantV2, tc.wantV1)
			}
		})
	}
}

func TestParseMeminfo(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    Meminfo
		wantErr string
	}{
		"live": {
			in: "MemTotal:       24684084 kB\nMemFree:        21375472 kB\nMemAvailable:   23244212 kB\nBuffers:           78616 kB\n" +
				"SwapTotal:       1048576 kB\nSwapFree:        1048000 kB\nHugePages_Total:       0\nHugepagesize:       2048 kB\n",
			want: Meminfo{MemTotal: 24684084 << 10, MemFree: 21375472 << 10, MemAvailable: 23244212 << 10,
				SwapTotal: 1048576 << 10, SwapFree: 1048000 << 10},
		},
		"before 3.14: no MemAvailable": {
			in:   "MemTotal: 100 kB\nMemFree: 50 kB\n",
			want: Meminfo{MemTotal: 100 << 10, MemFree: 50 << 10},
		},
		"no MemTotal":        {in: "MemFree: 50 kB\n", wantErr: "no MemTotal line"},
		"bad number":         {in: "MemTotal: lots kB\n", wantErr: `invalid number "lots"`},
		"no colon":           {in: "MemTotal 5 kB\n", wantErr: "no colon"},
		"bad other is fine":  {in: "MemTotal: 1 kB\nWeird: ???\n", want: Meminfo{MemTotal: 1024}},
		"unknown unit":       {in: "MemTotal: 1 GB\n", wantErr: "unknown unit"},
		"empty":              {in: "", wantErr: "no MemTotal line"},
		"value without unit": {in: "MemTotal: 1\n", want: Meminfo{MemTotal: 1}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseMeminfo([]byte(tc.in))
			checkErr(t, err, tc.wantErr)
			if tc.wantErr == "" && got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseCmdline(t *testing.T) {
	tests := map[string]struct {
		in   string
		want []string
	}{
		"kernel thread":         {in: "", want: nil},
		"normal":                {in: "/bin/sleep\x001000\x00", want: []string{"/bin/sleep", "1000"}},
		"no trailing NUL":       {in: "a\x00b", want: []string{"a", "b"}},
		"setproctitle":          {in: "sshd: /usr/sbin/sshd -D [listener]\x00\x00\x00\x00", want: []string{"sshd: /usr/sbin/sshd -D [listener]"}},
		"empty argument inside": {in: "prog\x00\x00x\x00", want: []string{"prog", "", "x"}},
		"only NULs":             {in: "\x00\x00", want: nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := parseCmdline([]byte(tc.in)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAtoi(t *testing.T) {
	tests := map[string]struct {
		in   string
		want int
		ok   bool
	}{
		"zero":       {"0", 0, true},
		"negative":   {"-1000", -1000, true},
		"max":        {"9223372036854775807", 1<<63 - 1, true},
		"too big":    {"9223372036854775808", 0, false},
		"empty":      {"", 0, false},
		"only minus": {"-", 0, false},
		"plus":       {"+1", 0, false},
		"space":      {" 1", 0, false},
		"huge":       {"99999999999999999999999", 0, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := atoi([]byte(tc.in))
			if got != tc.want || ok != tc.ok {
				t.Errorf("atoi(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("no error, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("error %q does not contain %q", err, want)
	}
	if err != nil && errors.Unwrap(err) == nil && strings.Contains(err.Error(), "%!") {
		t.Fatalf("badly formatted error %q", err)
	}
}
