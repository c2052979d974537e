//go:build race

package main

// raceBuild: the race detector's shadow memory multiplies a process's RSS
// several times, so a memory bound measured on it says nothing.
const raceBuild = true
