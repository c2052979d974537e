// Package kmsg reads kernel log records from /dev/kmsg and from the text
// that dmesg and journalctl print, so callers see one Record per kernel
// message whatever the source.
package kmsg
