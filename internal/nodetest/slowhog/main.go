// Command slowhog is the node test's slow hog (scenario 4c): it takes
// memory at a fixed pace, 1 MiB at a time, each page written, and keeps
// it until it is killed. A paced program, not a shell loop: under TCG on a
// busy host a loop of forks grows at whatever pace the host allows, while
// the scenario needs a rate well below the engine's fast-drop bar.
//
// With -fast-mib-per-s and -fast-until-available-mib it first takes memory
// at the fast pace while the node's MemAvailable (the container sees the
// host's /proc/meminfo) is above the given size, then at the slow pace:
// the scenario's point is the last stretch to minAvailable, and a slow
// pace from a full node would take minutes.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"podwarden/internal/procfs"
)

func main() {
	rate := flag.Int("mib-per-s", 16, "MiB taken per second, at most (a slow host takes fewer)")
	fast := flag.Int("fast-mib-per-s", 0, "MiB per second while MemAvailable is above -fast-until-available-mib (0: no fast phase)")
	until := flag.Int("fast-until-available-mib", 0, "MemAvailable, in MiB, where the fast phase ends")
	flag.Parse()
	if *rate <= 0 || *fast < 0 || *until < 0 {
		fmt.Fprintln(os.Stderr, "slowhog: -mib-per-s must be positive, -fast-mib-per-s and -fast-until-available-mib not negative")
		os.Exit(2)
	}
	var held [][]byte
	take := func() {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		held = append(held, b)
		// Held, not garbage: the point is resident memory.
		runtime.KeepAlive(held)
	}
	if *fast > 0 {
		proc, err := procfs.NewFS("/proc")
		if err != nil {
			fmt.Fprintln(os.Stderr, "slowhog:", err)
			os.Exit(1)
		}
		// A Ticker drops the ticks a slow host misses: the pace never
		// exceeds the rate.
		tick := time.NewTicker(time.Second / time.Duration(*fast))
		for range tick.C {
			mi, err := proc.Meminfo()
			if err != nil {
				fmt.Fprintln(os.Stderr, "slowhog:", err)
				os.Exit(1)
			}
			if mi.MemAvailable <= uint64(*until)<<20 {
				break
			}
			take()
		}
		tick.Stop()
		fmt.Printf("slowhog: %d MiB taken fast, now %d MiB/s\n", len(held), *rate)
	}
	tick := time.NewTicker(time.Second / time.Duration(*rate))
	for range tick.C {
		take()
	}
}
