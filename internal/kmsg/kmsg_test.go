package kmsg

import (
	"context"
	"os"
	"path/filepath"
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
