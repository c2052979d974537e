// Package streamtest checks, for tests, the contract podwarden's kernel
// event streams (cgwatch's inotify Watcher, procevent's netlink Listener)
// keep with their consumer when they end: Close and a cancelled context
// stop the stream's goroutine even while it is blocked on a consumer that
// stopped reading, the channel is closed behind it, and no goroutine is
// left running.
package streamtest
