//go:build !unix

package lineage

const openFlags = 0
