// Package regtest starts Debian's docker-registry (the CNCF distribution
// registry) on loopback with filesystem storage, for end-to-end tests and
// benchmarks. The packaged config turns auth on; Start writes its own.
package regtest
