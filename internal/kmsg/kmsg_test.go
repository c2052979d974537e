package kmsg

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseRecord(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    Record
		wantErr bool
	}{
		"plain": {in: "4,2444,5279329620,-;python3 invoked oom-killer: order=0\n",
			want: Record{Priority: 4, Seq: 2444, Monotonic: 5279329620 * time.Microsecond, Flags: "-", Text: "python3 invoked oom-killer: order=0"}},
		"facility and dict": {in: "30,7,100,c;usb 1-1: new device\n SUBSYSTEM=usb\n DEVICE=c189:1\n",
			want: Record{Priority: 6, Facility: 3, Seq: 7, Monotonic: 100 * time.Microsecond, Flags: "c", Text: "usb 1-1: new device",
				Dict: map[string]string{"SUBSYSTEM": "usb", "DEVICE": "c189:1"}}},
		"escaped":      {in: `6,1,1,-;a\x0ab`, want: Record{Priority: 6, Seq: 1, Monotonic: time.Microsecond, Flags: "-", Text: "a\nb"}},
		"no semicolon": {in: "4,1,1,-", wantErr: true},
		"bad seq":      {in: "4,x,1,-;t", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseRecord([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if tc.wantErr {
				return
			}
			if got.Text != tc.want.Text || got.Seq != tc.want.Seq || got.Priority != tc.want.Priority ||
				got.Facility != tc.want.Facility || got.Monotonic != tc.want.Monotonic || got.Flags != tc.want.Flags ||
				len(got.Dict) != len(tc.want.Dict) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			for k, v := range tc.want.Dict {
				if got.Dict[k] != v {
					t.Errorf("dict %s = %q, want %q", k, got.Dict[k], v)
				}
			}
		})
	}
}

func TestDecoderFormats(t *testing.T) {
	tests := map[string]struct {
		in     string
		format Format
		texts  []string
		mono   time.Duration
		wall   bool
	}{
		"dmesg": {in: "[  123.456789] a invoked oom-killer: x\n[  123.5] Memory cgroup stats for /x:\n[  123.6] anon 1\n                file 2\n<SNIP>\n[  124.0] end\n",
			format: FormatDmesg, texts: []string{"a invoked oom-killer: x", "Memory cgroup stats for /x:", "anon 1\nfile 2", "<SNIP>", "end"},
			mono: 123456789 * time.Microsecond},
		"dmesg -T": {in: "[Thu Nov 26 21:00:00 2026] hello\n[Thu Nov 26 21:00:01 2026] world\n",
			format: FormatDmesgT, texts: []string{"hello", "world"}, wall: true},
		"journal short-precise": {in: "-- Journal begins --\nNov 26 21:00:00.123456 host kernel: hello\nNov 26 21:00:00.223456 host kernel: world\n",
			format: FormatJournal, texts: []string{"hello", "world"}, wall: true},
		"journal json": {in: `{"MESSAGE":"hello","__MONOTONIC_TIMESTAMP":"5000000","__REALTIME_TIMESTAMP":"1795726800000000"}` + "\n" +
			`{"MESSAGE":[119,111,114,108,100],"__MONOTONIC_TIMESTAMP":"6000000"}` + "\n",
			format: FormatJSON, texts: []string{"hello", "world"}, mono: 5 * time.Second, wall: true},
		"kmsg": {in: "4,1,5000000,-;hello\n SUBSYSTEM=x\n4,2,6000000,-;world\n",
			format: FormatKmsg, texts: []string{"hello", "world"}, mono: 5 * time.Second},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d := NewDecoder(strings.NewReader(tc.in), FormatAuto)
			var got []Record
			for {
				r, err := d.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, r)
			}
			if d.Format() != tc.format {
				t.Errorf("format = %v, want %v", d.Format(), tc.format)
			}
			if len(got) != len(tc.texts) {
				t.Fatalf("got %d records %+v, want %d", len(got), got, len(tc.texts))
			}
			for i, r := range got {
				if r.Text != tc.texts[i] {
					t.Errorf("record %d text %q, want %q", i, r.Text, tc.texts[i])
				}
			}
			if got[0].Monotonic != tc.mono {
				t.Errorf("monotonic = %v, want %v", got[0].Monotonic, tc.mono)
			}
			if got[0].Time.IsZero() == tc.wall {
				t.Errorf("wall time = %v, want known=%v", got[0].Time, tc.wall)
			}
		})
	}
}

// TestDeviceFollowFIFO writes records into a FIFO while the reader waits,
// as the kernel does on /dev/kmsg.
func TestDeviceFollowFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "kmsg")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dev, err := OpenDevice(p, true, true)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	go func() {
		w, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer w.Close()
		for i, s := range []string{"6,1,1,-;first\n", "6,2,2,-;second\n SUBSYSTEM=x\n"} {
			time.Sleep(time.Duration(i*100) * time.Millisecond)
			_, _ = w.WriteString(s)
		}
	}()
	for _, want := range []string{"first", "second"} {
		r, err := dev.Next(ctx)
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if r.Text != want {
			t.Errorf("got %q, want %q", r.Text, want)
		}
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add([]byte("4,2444,5279329620,-;python3 invoked oom-killer\n SUBSYSTEM=x\n"))
	f.Add([]byte(`6,1,1,-;a\x0`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseRecord(b)
	})
}

func FuzzDecoder(f *testing.F) {
	f.Add("[  1.000000] a\n  b\n<SNIP>\n")
	f.Add("[Thu Nov 26 21:00:00 2026] a\n")
	f.Add("Nov 26 21:00:00.123456 host kernel: a\n")
	f.Add(`{"MESSAGE":[1,2],"__MONOTONIC_TIMESTAMP":"1"}` + "\n")
	f.Add("4,1,1,-;a\n b=c\n")
	f.Fuzz(func(t *testing.T, s string) {
		d := NewDecoder(strings.NewReader(s), FormatAuto)
		for range 10000 {
			if _, err := d.Next(); err != nil {
				return
			}
		}
		t.Fatal("decoder did not end")
	})
}
