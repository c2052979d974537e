// Package oomreport assembles the kernel log lines of one OOM kill into a
// structured Report, attributes its cgroups to pods and diagnoses it.
package oomreport
