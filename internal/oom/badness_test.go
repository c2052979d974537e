package oom

import "testing"

// seedTotal is the 8 GiB, swapless EC2 instance from the seed notes.
const seedTotal = 8 << 30 / PageSize

func TestScoreMatchesSeed(t *testing.T) {
	// Every row is a line of the seed's oom_info.py output for processes
	// using next to no memory, where the score is decided by adj alone.
	tests := []struct {
		name string
		task Task
		want int
	}{
		{"adj 0 idle", Task{PID: 1058, Adj: 0}, 666},
		{"journald -250", Task{PID: 682, Adj: -250}, 500},
		{"sysbox -500", Task{PID: 1310, Adj: -500}, 334},
		{"dbus -900", Task{PID: 1233, Adj: -900}, 67},
		{"guaranteed pod -997", Task{PID: 1004927, Adj: -997}, 2},
		{"crio -999", Task{PID: 1231, Adj: -999}, 1},
		{"conmon -1000", Task{PID: 999004, Adj: -1000}, 0},
		{"init", Task{PID: 1, Adj: 0, RSSPages: 1 << 20}, 0},
		{"kernel thread", Task{PID: 2, Kernel: true}, 0},
		// (1000 + (1300+100*2097)*1000/2097152) * 2/3 = (1000+100)*2/3
		{"user systemd +100", Task{PID: 2174689, Adj: 100, RSSPages: 1300}, 733},
		// 1000*2097*1000/2097152 truncates to 999
		{"adj 1000", Task{PID: 7, Adj: 1000}, 1332},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Score(tt.task, seedTotal); got != tt.want {
				t.Errorf("Score = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestBadness(t *testing.T) {
	tests := []struct {
		name   string
		task   Task
		total  uint64
		want   int64
		wantOK bool
	}{
		{"rss swap and page tables", Task{PID: 10, RSSPages: 100, SwapPages: 20, PgTableBytes: 3 * PageSize}, 1000, 123, true},
		{"page tables round down", Task{PID: 10, PgTableBytes: PageSize - 1}, 1000, 0, true},
		{"adj scales by totalpages/1000", Task{PID: 10, RSSPages: 500, Adj: -997}, 2_000_000, 500 - 997*2000, true},
		{"adj clamps above 1000", Task{PID: 10, Adj: 5000}, 1_000_000, 1000 * 1000, true},
		{"totalpages below 1000 cancels adj", Task{PID: 10, RSSPages: 5, Adj: 1000}, 999, 5, true},
		{"adj -1000 is unkillable", Task{PID: 10, RSSPages: 1 << 30, Adj: -1000}, 1000, 0, false},
		{"init is unkillable", Task{PID: 1, RSSPages: 1}, 1000, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Badness(tt.task, tt.total)
			if ok != tt.wantOK || ok && got != tt.want {
				t.Errorf("Badness = %d, %v; want %d, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[uint64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 7 << 30: "7.0 GiB",
		7_623_000_000: "7.1 GiB", 3 << 40: "3.0 TiB", 1 << 62: "4.0 EiB",
	} {
		if got := HumanBytes(n); got != want {
			t.Errorf("HumanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
