package procfs

import (
	"bytes"
	"strings"
	"testing"
)

// The fuzz targets check that no input panics, and what a successful
// parse promises.

func FuzzParseStat(f *testing.F) {
	f.Add([]byte(liveStat))
	f.Add([]byte("42 (a) S 1 (b c)) R 7 42 42 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 3 0 1\n"))
	f.Add([]byte("11 (kworker/0:1-virtio_vsock) I 2 0 0 0 -1 69238880 0 0 0 0 0 17 0 0 20 0 1 0 9 0 0 18446744073709551615 0\n"))
	f.Add([]byte("77 (bash) S 1 77\n"))
	f.Add([]byte(") ("))
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Proc
		if err := parseStat(b, &p); err != nil {
			return
		}
		if p.PID < 0 || !bytes.Contains(b, []byte("("+p.Comm+")")) {
			t.Errorf("parsed %+v from %q", p, b)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte(liveStatus))
	f.Add([]byte("Name:\tkthreadd\nState:\tS (sleeping)\nPPid:\t0\nUid:\t0\t0\t0\t0\nKthread:\t1\nThreads:\t1\n"))
	f.Add([]byte("Uid:\tx\t0\t0\t0\n"))
	f.Add([]byte("Uid:\t0\nRssAnon:\t18014398509481983 kB\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseStatus(b)
		if err != nil {
			return
		}
		if !s.haveUID {
			t.Errorf("no error without a Uid line: %q", b)
		}
		var p Proc
		s.apply(&p, false)
	})
}

func FuzzParseCgroup(f *testing.F) {
	f.Add([]byte("0::/system.slice/crio.service\n"))
	f.Add([]byte("9:name=systemd:/\n4:memory:/process_api/59206d649c453b5bb4b90ea71275e1a8\n0::/\n"))
	f.Add([]byte("5:cpu,memory,pids:/kubepods/pod1/abc\n"))
	f.Add([]byte("0:/x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v2, v1, err := parseCgroup(b)
		if err != nil {
			return
		}
		if strings.Contains(v2, "\n") || strings.Contains(v1, "\n") {
			t.Errorf("path with a newline from %q: %q %q", b, v2, v1)
		}
	})
}

func FuzzParseMeminfo(f *testing.F) {
	f.Add([]byte("MemTotal:       24684084 kB\nMemFree:        21375472 kB\nMemAvailable:   23244212 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n"))
	f.Add([]byte("MemTotal: 1\nHugePages_Total:       0\n"))
	f.Add([]byte("MemTotal: 18014398509481984 kB\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMeminfo(b)
		if err != nil {
			return
		}
		if !bytes.Contains(b, []byte("MemTotal")) {
			t.Errorf("parsed %+v without MemTotal from %q", m, b)
		}
	})
}
