package oomreport

import "testing"

func TestKernelVersion(t *testing.T) {
	for _, tc := range []struct {
		release string
		want    [2]int
		ok      bool
	}{
		{"4.14.336-257.562.amzn2.x86_64", [2]int{4, 14}, true},
		{"6.1.0-57-amd64", [2]int{6, 1}, true},
		{"5.3.0-rc3+", [2]int{5, 3}, true},
		{"3.10.0-1160.el7.x86_64", [2]int{3, 10}, true},
		{"6.18", [2]int{6, 18}, true},
		{"", [2]int{}, false},
		{"6", [2]int{}, false},
		{"6.", [2]int{}, false},
		{"v6.1", [2]int{}, false},
		{"99999999999.1", [2]int{}, false},
	} {
		got, ok := kernelVersion(tc.release)
		if got != tc.want || ok != tc.ok {
			t.Errorf("kernelVersion(%q) = %v, %v; want %v, %v", tc.release, got, ok, tc.want, tc.ok)
		}
	}
}

// TestExpectsSummary: the oom-kill summary is judged missing only where
// the kernel that printed the report writes one (5.0 on).
func TestExpectsSummary(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Report
		want bool
	}{
		{"6.1", Report{Kernel: "6.1.0-57-amd64"}, true},
		{"5.0", Report{Kernel: "5.0.0-1-amd64"}, true},
		{"4.19 prints no summary", Report{Kernel: "4.19.0-27-amd64"}, false},
		{"4.14", Report{Kernel: "4.14.336-257.562.amzn2.x86_64"}, false},
		{"3.10", Report{Kernel: "3.10.0-1160.el7.x86_64"}, false},
		{"unknown kernel, new format", Report{}, true},
		{"unknown kernel, pre-5.0 lines", Report{preSummary: true}, false},
		{"release beats the lines", Report{Kernel: "6.1.0", preSummary: true}, true},
	} {
		if got := expectsSummary(&tc.r); got != tc.want {
			t.Errorf("%s: expectsSummary = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func FuzzKernelVersion(f *testing.F) {
	for _, s := range []string{"4.14.336-257.562.amzn2.x86_64", "6.1", "", "1.", ".1", "9999.9999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := kernelVersion(s)
		if !ok && v != [2]int{} {
			t.Fatalf("kernelVersion(%q) = %v with ok false", s, v)
		}
		if v[0] > 9999 || v[1] > 9999 || v[0] < 0 || v[1] < 0 {
			t.Fatalf("kernelVersion(%q) = %v out of range", s, v)
		}
	})
}
