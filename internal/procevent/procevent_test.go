package procevent

import (
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// message builds one kernel-shaped datagram: nlmsghdr + cn_msg + proc_event
// with the given union words (linux/cn_proc.h).
func message(what uint32, words ...uint32) []byte {
	ne := binary.NativeEndian
	data := make([]byte, procEventHdrLen+4*len(words))
	ne.PutUint32(data[0:], what)
	ne.PutUint64(data[8:], 12345)
	for i, w := range words {
		ne.PutUint32(data[procEventHdrLen+4*i:], w)
	}
	cn := make([]byte, cnMsgLen, cnMsgLen+len(data))
	ne.PutUint32(cn[0:], cnIdxProc)
	ne.PutUint32(cn[4:], cnValProc)
	ne.PutUint16(cn[16:], uint16(len(data)))
	cn = append(cn, data...)
	b := make([]byte, nlmsgHdrLen, nlmsgHdrLen+len(cn))
	ne.PutUint32(b[0:], uint32(nlmsgHdrLen+len(cn)))
	ne.PutUint16(b[4:], unix.NLMSG_DONE)
	return append(b, cn...)
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want []Event
	}{
		{"fork", message(procEventFork, 10, 10, 11, 11), []Event{{Kind: Fork, ParentPID: 10, ParentTGID: 10, PID: 11, TGID: 11}}},
		{"thread", message(procEventFork, 10, 10, 12, 10), []Event{{Kind: Fork, ParentPID: 10, ParentTGID: 10, PID: 12, TGID: 10}}},
		{"exec", message(procEventExec, 11, 11), []Event{{Kind: Exec, PID: 11, TGID: 11}}},
		{"exit with code", message(procEventExit, 11, 11, 0, 17, 10, 10), []Event{{Kind: Exit, PID: 11, TGID: 11}}},
		{"two in one datagram", append(message(procEventExec, 1, 1), message(procEventExec, 2, 2)...), []Event{{Kind: Exec, PID: 1, TGID: 1}, {Kind: Exec, PID: 2, TGID: 2}}},
		{"ack is skipped", message(0), nil},
		{"comm event is skipped", message(0x200, 1, 1), nil},
		{"truncated union", message(procEventFork, 10), nil},
		{"short", []byte{1, 2, 3}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := parse(tt.in)
			if len(got) != len(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("event %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
	if _, err := parse(func() []byte { b := message(procEventExec, 1, 1); binary.NativeEndian.PutUint32(b, 9999); return b }()); err == nil {
		t.Error("a length beyond the datagram was accepted")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(message(procEventFork, 1, 1, 2, 2))
	f.Add(append(message(procEventExec, 1, 1), message(procEventExit, 1, 1, 0, 9)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, _ := parse(b)
		for _, ev := range evs {
			if ev.PID < 0 || ev.TGID < 0 || ev.Kind == 0 {
				t.Fatalf("bad event %+v", ev)
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	m := message(procEventFork, 10, 10, 11, 11)
	for b.Loop() {
		_, _ = parse(m)
	}
}

// TestLiveForkExecExit needs root in the host network namespace.
func TestLiveForkExecExit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the process connector needs CAP_NET_ADMIN")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := Listen(ctx)
	if err != nil {
		t.Skipf("process connector unavailable here: %v", err)
	}
	defer l.Close()
	cmd := exec.Command("sh", "-c", "exec sleep 0.2")
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer cmd.Wait()
	seen := map[Kind]time.Duration{}
	for len(seen) < 3 {
		select {
		case ev, ok := <-l.Events():
			if !ok {
				t.Fatalf("listener closed: %v", l.Err())
			}
			if ev.TGID != pid {
				continue
			}
			if _, dup := seen[ev.Kind]; !dup {
				seen[ev.Kind] = ev.Time.Sub(start)
			}
			if ev.Kind == Fork && ev.ParentTGID != os.Getpid() {
				t.Errorf("fork parent = %d, want %d", ev.ParentTGID, os.Getpid())
			}
		case <-ctx.Done():
			t.Fatalf("saw %v for pid %d before the timeout", seen, pid)
		}
	}
	for _, k := range []Kind{Fork, Exec, Exit} {
		if _, ok := seen[k]; !ok {
			t.Errorf("no %v event", k)
		}
	}
	t.Logf("from cmd.Start to event: fork %v, exec %v, exit %v", seen[Fork], seen[Exec], seen[Exit])
}

func TestCloseEndsTheListener(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the process connector needs CAP_NET_ADMIN")
	}
	l, err := Listen(context.Background())
	if err != nil {
		t.Skipf("process connector unavailable here: %v", err)
	}
	done := make(chan struct{})
	go func() {
		for range l.Events() {
		}
		close(done)
	}()
	l.Close()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("events channel not closed after Close")
	}
	if l.Err() != nil {
		t.Fatalf("Err after Close = %v", l.Err())
	}
}
