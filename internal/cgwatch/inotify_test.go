package cgwatch

import (
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// inotifyEvent builds one struct inotify_event with its name NUL-padded to
// pad bytes, as the kernel does (it rounds up to the event size).
func inotifyEvent(wd int32, mask uint32, name string, pad int) []byte {
	b := make([]byte, inotifyHdrLen+pad)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(wd))
	ne.PutUint32(b[4:], mask)
	ne.PutUint32(b[12:], uint32(pad))
	copy(b[inotifyHdrLen:], name)
	return b
}

func TestParseEvents(t *testing.T) {
	tests := map[string]struct {
		in      []byte
		want    []rawEvent
		wantErr bool
	}{
		"mkdir": {in: inotifyEvent(1, unix.IN_CREATE|unix.IN_ISDIR, "pod1", 16),
			want: []rawEvent{{1, unix.IN_CREATE | unix.IN_ISDIR, "pod1"}}},
		"two events": {in: append(inotifyEvent(1, unix.IN_CREATE|unix.IN_ISDIR, "a", 16), inotifyEvent(2, unix.IN_DELETE_SELF, "", 0)...),
			want: []rawEvent{{1, unix.IN_CREATE | unix.IN_ISDIR, "a"}, {2, unix.IN_DELETE_SELF, ""}}},
		"overflow":           {in: inotifyEvent(-1, unix.IN_Q_OVERFLOW, "", 0), want: []rawEvent{{-1, unix.IN_Q_OVERFLOW, ""}}},
		"name fills its pad": {in: inotifyEvent(3, unix.IN_DELETE, "0123456789abcdef", 16), want: []rawEvent{{3, unix.IN_DELETE, "0123456789abcdef"}}},
		"empty read":         {in: nil},
		"short header":       {in: make([]byte, 10), wantErr: true},
		"name beyond the read": {in: inotifyEvent(1, unix.IN_CREATE, "a", 16)[:20],
			wantErr: true},
		"trailing bytes": {in: append(inotifyEvent(1, unix.IN_CREATE, "a", 16), 1, 2), want: []rawEvent{{1, unix.IN_CREATE, "a"}}, wantErr: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseEvents(nil, tt.in)
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, errMalformed)) {
				t.Fatalf("err = %v, want error: %v", err, tt.wantErr)
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

func FuzzParseEvents(f *testing.F) {
	f.Add(inotifyEvent(1, unix.IN_CREATE|unix.IN_ISDIR, "pod", 16))
	f.Add(append(inotifyEvent(-1, unix.IN_Q_OVERFLOW, "", 0), inotifyEvent(2, unix.IN_IGNORED, "", 0)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := parseEvents(nil, b)
		if err != nil && !errors.Is(err, errMalformed) {
			t.Fatalf("error %v does not wrap errMalformed", err)
		}
		if len(evs) > len(b)/inotifyHdrLen {
			t.Fatalf("%d events from %d bytes", len(evs), len(b))
		}
		n := 0
		for _, ev := range evs {
			n += inotifyHdrLen + len(ev.name)
			for i := range len(ev.name) {
				if ev.name[i] == 0 {
					t.Fatalf("NUL in name %q", ev.name)
				}
			}
		}
		if n > len(b) {
			t.Fatalf("events span %d of %d bytes", n, len(b))
		}
	})
}

func BenchmarkParseEvents(b *testing.B) {
	var in []byte
	for range 64 {
		in = append(in, inotifyEvent(7, unix.IN_CREATE|unix.IN_ISDIR, "cri-containerd-0123456789abcdef.scope", 48)...)
	}
	var evs []rawEvent
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		evs, _ = parseEvents(evs[:0], in)
	}
}
