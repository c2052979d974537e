// Command slowhog is the node test's slow hog (scenario 4c): it takes
// memory at a fixed pace, 1 MiB at a time, each page written, and keeps
// it until it is killed. A paced program, not a shell loop: under TCG on a
// busy host a loop of forks grows at whatever pace the host allows, while
// the scenario needs a rate below the engine's fast-drop bar and not far
// below it.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"
)

func main() {
	rate := flag.Int("mib-per-s", 16, "MiB taken per second, at most (a slow host takes fewer)")
	flag.Parse()
	if *rate <= 0 {
		fmt.Fprintln(os.Stderr, "slowhog: -mib-per-s must be positive")
		os.Exit(2)
	}
	// A Ticker drops the ticks a slow host misses: the pace never exceeds
	// the rate.
	tick := time.NewTicker(time.Second / time.Duration(*rate))
	var held [][]byte
	for range tick.C {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		held = append(held, b)
		// Held, not garbage: the point is resident memory.
		runtime.KeepAlive(held)
	}
}
