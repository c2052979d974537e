// Command tiny stands in for podwarden's binaries in internal/release's
// tests: the release recipe is the same, and cross-compiling it is cheap.
package main

func main() { println("podwarden release test") }
