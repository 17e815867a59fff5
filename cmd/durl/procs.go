package main

import "runtime"

// minSyncProcs is the fewest Ps (GOMAXPROCS) durl runs with while it makes
// downloads durable.
//
// A goroutine in a system call keeps its P until the runtime's monitor
// takes it back, and while every P is busy the network is polled only
// every 10 ms (golang/go#51651). durl's downloads spend milliseconds in
// fsync each, so on a 2-core machine the answers of the server waited
// about 10 ms each, and 2,000 small durable files took about twice as
// long as with more Ps. Idle Ps cost nothing; CPU-bound work is still
// spread over the same cores. See docs/benchmarks.md, scenario 6.
const minSyncProcs = 8

// ensureSyncProcs raises GOMAXPROCS to minSyncProcs, unless the user chose
// a value with the GOMAXPROCS environment variable.
func ensureSyncProcs(getenv func(string) string) {
	if getenv("GOMAXPROCS") == "" && runtime.GOMAXPROCS(0) < minSyncProcs {
		runtime.GOMAXPROCS(minSyncProcs)
	}
}
