package oomreport

// What a report should hold depends on the kernel that printed it
// (docs/events.md, on `missing`): judging a 4.14 report by 6.1's lines
// flags as missing what that kernel never wrote.

// summaryKernel is the first kernel that prints the one-line
// "oom-kill:constraint=..." summary (mm/oom_kill.c dump_oom_summary, 5.0);
// the same release dropped the "Task in X killed as a result of limit of
// Y" line that named the cgroups before.
var summaryKernel = [2]int{5, 0}

// kernelVersion returns the major and minor version of a release as the
// CPU line prints it ("4.14.336-257.562.amzn2.x86_64", "6.1.0-57-amd64",
// "5.3.0-rc3+"); ok is false when release does not start with them.
func kernelVersion(release string) (v [2]int, ok bool) {
	i := 0
	for part := range 2 {
		start := i
		for i < len(release) && release[i] >= '0' && release[i] <= '9' && i-start < 4 {
			v[part] = v[part]*10 + int(release[i]-'0')
			i++
		}
		if i == start {
			return [2]int{}, false
		}
		if part == 0 {
			if i >= len(release) || release[i] != '.' {
				return [2]int{}, false
			}
			i++
		}
	}
	return v, true
}

func versionAtLeast(v, min [2]int) bool {
	return v[0] > min[0] || v[0] == min[0] && v[1] >= min[1]
}

// expectsSummary reports whether the kernel that printed r writes the
// oom-kill summary line: by the release in the CPU line when the input
// kept it, else by the lines only older kernels print.
func expectsSummary(r *Report) bool {
	if v, ok := kernelVersion(r.Kernel); ok {
		return versionAtLeast(v, summaryKernel)
	}
	return !r.preSummary
}
