package procevent

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// procMsg builds one netlink message as the kernel sends it (cn_proc.c
// send_msg): nlmsghdr (type NLMSG_DONE), cn_msg {CN_IDX_PROC, CN_VAL_PROC,
// seq, ack, len 40}, then struct proc_event: what, cpu, timestamp_ns and
// the 24-byte union holding words.
func procMsg(what uint32, ts uint64, words ...uint32) []byte {
	return connMsg(cnIdxProc, 0, what, ts, words...)
}

func connMsg(idx, ack, what uint32, ts uint64, words ...uint32) []byte {
	ne := binary.NativeEndian
	const unionLen = 24 // the largest members: exit and comm
	ev := make([]byte, procEventHdrLen+max(unionLen, 4*len(words)))
	ne.PutUint32(ev[0:], what)
	ne.PutUint32(ev[4:], 1) // cpu
	ne.PutUint64(ev[8:], ts)
	for i, w := range words {
		ne.PutUint32(ev[procEventHdrLen+4*i:], w)
	}
	b := make([]byte, nlmsgHdrLen+cnMsgLen, nlmsgHdrLen+cnMsgLen+len(ev))
	ne.PutUint32(b[0:], uint32(cap(b)))
	ne.PutUint16(b[4:], unix.NLMSG_DONE)
	ne.PutUint32(b[8:], 7) // nlmsg_seq
	cn := b[nlmsgHdrLen:]
	ne.PutUint32(cn[0:], idx)
	ne.PutUint32(cn[4:], cnValProc)
	ne.PutUint32(cn[8:], 7) // seq
	ne.PutUint32(cn[12:], ack)
	ne.PutUint16(cn[16:], uint16(len(ev)))
	return append(b, ev...)
}

// encode is the inverse of decodeEvent, for the fuzz round trip.
func encode(ev Event) []byte {
	ts := uint64(ev.Timestamp)
	switch ev.Kind {
	case Fork:
		return procMsg(procEventFork, ts, uint32(ev.ParentPID), uint32(ev.ParentTGID), uint32(ev.PID), uint32(ev.TGID))
	case Exec:
		return procMsg(procEventExec, ts, uint32(ev.PID), uint32(ev.TGID))
	case Exit:
		return procMsg(procEventExit, ts, uint32(ev.PID), uint32(ev.TGID), uint32(ev.ExitStatus), 17)
	case UID:
		return procMsg(procEventUID, ts, uint32(ev.PID), uint32(ev.TGID), 1000, 1000)
	case GID:
		return procMsg(procEventGID, ts, uint32(ev.PID), uint32(ev.TGID), 1000, 1000)
	}
	panic("encode: kind " + ev.Kind.String())
}

func cat(msgs ...[]byte) []byte {
	var b []byte
	for _, m := range msgs {
		b = append(b, m...)
	}
	return b
}

// withLen rewrites a message's nlmsg_len or cn_msg.len, to build the
// malformed datagrams a kernel never sends.
func withLen(m []byte, nl uint32, cn uint16) []byte {
	m = append([]byte(nil), m...)
	if nl != 0 {
		binary.NativeEndian.PutUint32(m[0:], nl)
	}
	if cn != 0 {
		binary.NativeEndian.PutUint16(m[nlmsgHdrLen+16:], cn)
	}
	return m
}

// kernelFork is a fork datagram captured from Linux 6.18 on amd64: pid
// 19944 forked 19949 (then "sh -c 'exit 3'").
const kernelFork = "4c 00 00 00 03 00 00 00 bd 02 00 00 00 00 00 00 01 00 00 00 01 00 00 00 bd 02 00 00 00 00 00 00 " +
	"28 00 00 00 01 00 00 00 01 00 00 00 e1 3c 2b 4c 47 04 00 00 e8 4d 00 00 e8 4d 00 00 ed 4d 00 00 ed 4d 00 00 " +
	"00 00 00 00 00 00 00 00"

// kernelExit is the matching exit: status 3<<8, exit_signal SIGCHLD,
// parent 19944.
const kernelExit = "4c 00 00 00 03 00 00 00 c0 02 00 00 00 00 00 00 01 00 00 00 01 00 00 00 c0 02 00 00 00 00 00 00 " +
	"28 00 00 00 00 00 00 80 00 00 00 00 e1 a3 34 4c 47 04 00 00 ed 4d 00 00 ed 4d 00 00 00 03 00 00 11 00 00 00 " +
	"e8 4d 00 00 e8 4d 00 00"

func TestParse(t *testing.T) {
	const ts = 4_700_000_000_000
	tests := map[string]struct {
		in      []byte
		want    []Event
		wantErr bool
	}{
		"fork of a process": {in: procMsg(procEventFork, ts, 10, 10, 11, 11),
			want: []Event{{Kind: Fork, ParentPID: 10, ParentTGID: 10, PID: 11, TGID: 11, Timestamp: ts}}},
		"fork of a thread": {in: procMsg(procEventFork, ts, 1, 1, 12, 10),
			want: []Event{{Kind: Fork, ParentPID: 1, ParentTGID: 1, PID: 12, TGID: 10, Timestamp: ts}}},
		"exec": {in: procMsg(procEventExec, ts, 11, 11),
			want: []Event{{Kind: Exec, PID: 11, TGID: 11, Timestamp: ts}}},
		"exit by SIGKILL": {in: procMsg(procEventExit, ts, 11, 11, 9, 17, 10, 10),
			want: []Event{{Kind: Exit, PID: 11, TGID: 11, ExitStatus: 9, Timestamp: ts}}},
		"exit without parent fields (before 4.x)": {in: withLen(procMsg(procEventExit, ts, 11, 11, 1<<8, 17), 16+20+32, 32)[:16+20+32],
			want: []Event{{Kind: Exit, PID: 11, TGID: 11, ExitStatus: 1 << 8, Timestamp: ts}}},
		"uid change": {in: procMsg(procEventUID, ts, 5, 5, 0, 1000),
			want: []Event{{Kind: UID, PID: 5, TGID: 5, Timestamp: ts}}},
		"gid change": {in: procMsg(procEventGID, ts, 5, 5, 0, 1000),
			want: []Event{{Kind: GID, PID: 5, TGID: 5, Timestamp: ts}}},
		"two messages in one datagram": {in: cat(procMsg(procEventExec, ts, 1, 1), procMsg(procEventExit, ts, 2, 3, 0, 17)),
			want: []Event{{Kind: Exec, PID: 1, TGID: 1, Timestamp: ts}, {Kind: Exit, PID: 2, TGID: 3, Timestamp: ts}}},
		"last message without its padding": {in: withLen(procMsg(procEventExec, ts, 1, 1), 16+20+16+8+1, 25)[:16+20+25],
			want: []Event{{Kind: Exec, PID: 1, TGID: 1, Timestamp: ts}}},
		"ack is skipped":         {in: connMsg(cnIdxProc, 5, procEventNone, ts, 0)},
		"comm is skipped":        {in: procMsg(0x200, ts, 1, 1, 0x6f6f66)},
		"sid is skipped":         {in: procMsg(0x80, ts, 1, 1)},
		"another connector user": {in: connMsg(2, 0, procEventFork, ts, 1, 1, 2, 2)},
		"empty datagram":         {in: nil},
		"NLMSG_NOOP": {in: func() []byte {
			m := procMsg(procEventExec, ts, 1, 1)
			binary.NativeEndian.PutUint16(m[4:], unix.NLMSG_NOOP)
			return m
		}()},
		"shorter than nlmsghdr":          {in: []byte{1, 2, 3}, wantErr: true},
		"nlmsg_len beyond the datagram":  {in: withLen(procMsg(procEventExec, ts, 1, 1), 9999, 0), wantErr: true},
		"nlmsg_len below its header":     {in: withLen(procMsg(procEventExec, ts, 1, 1), 8, 0), wantErr: true},
		"cn_msg.len beyond the message":  {in: withLen(procMsg(procEventExec, ts, 1, 1), 0, 200), wantErr: true},
		"no room for cn_msg":             {in: withLen(procMsg(procEventExec, ts, 1, 1), 16+10, 0), wantErr: true},
		"proc_event header cut short":    {in: withLen(procMsg(procEventExec, ts, 1, 1), 0, 8), wantErr: true},
		"fork union cut short":           {in: withLen(procMsg(procEventFork, ts, 1, 1, 2, 2), 0, 16+8), wantErr: true},
		"negative pid":                   {in: procMsg(procEventExec, ts, 0xffffffff, 1), wantErr: true},
		"trailing bytes after a message": {in: cat(procMsg(procEventExec, ts, 1, 1), []byte{0, 0, 0, 0}), wantErr: true, want: []Event{{Kind: Exec, PID: 1, TGID: 1, Timestamp: ts}}},
	}
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 { // the captures are little-endian
		tests["captured fork"] = struct {
			in      []byte
			want    []Event
			wantErr bool
		}{in: mustHex(t, kernelFork), want: []Event{{Kind: Fork, ParentPID: 19944, ParentTGID: 19944, PID: 19949, TGID: 19949, Timestamp: 0x4474c2b3ce1}}}
		tests["captured exit"] = struct {
			in      []byte
			want    []Event
			wantErr bool
		}{in: mustHex(t, kernelExit), want: []Event{{Kind: Exit, PID: 19949, TGID: 19949, ExitStatus: 3 << 8, Timestamp: 0x4474c34a3e1}}}
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parse(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, errMalformed) {
				t.Errorf("err = %v, want errMalformed", err)
			}
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
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFindAck(t *testing.T) {
	ack := func(ackNo, errno uint32) []byte { return connMsg(cnIdxProc, ackNo, procEventNone, 1, errno) }
	tests := map[string]struct {
		in        []byte
		found     bool
		wantErrno unix.Errno
	}{
		"ours":                     {in: ack(101, 0), found: true},
		"ours, refused":            {in: ack(101, uint32(unix.EPERM)), found: true, wantErrno: unix.EPERM},
		"another subscriber's ack": {in: ack(55, 0)},
		"an event, not an ack":     {in: procMsg(procEventExec, 1, 101, 101)},
		"behind an event":          {in: cat(procMsg(procEventFork, 1, 1, 1, 2, 2), ack(101, 0)), found: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			found, errno, err := findAck(tt.in, 100)
			if err != nil || found != tt.found || errno != tt.wantErrno {
				t.Fatalf("findAck = %v, %v, %v; want %v, %v, nil", found, errno, err, tt.found, tt.wantErrno)
			}
		})
	}
}

func TestControlMsg(t *testing.T) {
	// The kernel checks nlmsg_len against the buffer and cn_msg.len == 4
	// (cn_rx_skb, cn_proc_mcast_ctl); walk applies the same checks.
	var got []byte
	err := walk(controlMsg(procCnMcastListen, 41), func(cn []byte) error { got = cn; return nil })
	if err != nil || len(got) != cnMsgLen+4 {
		t.Fatalf("walk = %v, cn_msg of %d bytes", err, len(got))
	}
	if op := binary.NativeEndian.Uint32(got[cnMsgLen:]); op != procCnMcastListen {
		t.Errorf("op = %d", op)
	}
	if ack := binary.NativeEndian.Uint32(got[12:]); ack != 41 {
		t.Errorf("ack = %d", ack)
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{Fork: "fork", Exec: "exec", Exit: "exit", UID: "uid", GID: "gid", 0: "Kind(0)"} {
		if k.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(k), k.String(), want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(procMsg(procEventFork, 1, 1, 1, 2, 2))
	f.Add(cat(procMsg(procEventExec, 5, 1, 1), procMsg(procEventExit, 6, 1, 1, 9, 17, 0, 0)))
	f.Add(connMsg(cnIdxProc, 3, procEventNone, 0, 0))
	f.Add(withLen(procMsg(procEventExit, 1, 1, 1, 0, 17), 16+20+32, 32)[:16+20+32])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := parse(b)
		if err != nil && !errors.Is(err, errMalformed) {
			t.Fatalf("error %v does not wrap errMalformed", err)
		}
		// Each event needs a whole nlmsghdr, cn_msg and proc_event header.
		if len(evs) > len(b)/(nlmsgHdrLen+cnMsgLen+procEventHdrLen) {
			t.Fatalf("%d events from %d bytes", len(evs), len(b))
		}
		for _, ev := range evs {
			if ev.Kind < Fork || ev.Kind > GID || ev.PID < 0 || ev.TGID < 0 || ev.ParentPID < 0 || ev.ParentTGID < 0 || ev.Timestamp < 0 {
				t.Fatalf("bad event %+v", ev)
			}
			if ev.Kind != Fork && (ev.ParentPID != 0 || ev.ParentTGID != 0) {
				t.Fatalf("parent on a %v event: %+v", ev.Kind, ev)
			}
			again, err := parse(encode(ev))
			if err != nil || len(again) != 1 || again[0] != ev {
				t.Fatalf("round trip of %+v = %+v, %v", ev, again, err)
			}
		}
		_, _, _ = findAck(b, 0)
	})
}

// BenchmarkParse decodes one fork datagram into a reused slice, as the
// receive loop does.
func BenchmarkParse(b *testing.B) {
	m := procMsg(procEventFork, 1, 10, 10, 11, 11)
	var evs []Event
	b.SetBytes(int64(len(m)))
	b.ReportAllocs()
	for b.Loop() {
		evs, _ = appendEvents(evs[:0], m)
	}
	if len(evs) != 1 {
		b.Fatal(evs)
	}
}

func BenchmarkParseFresh(b *testing.B) {
	m := procMsg(procEventExec, 1, 10, 10)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = parse(m)
	}
}
