// Package kmsg reads kernel log records from /dev/kmsg and from any text
// that carries them (dmesg in its formats, syslog files, journalctl, saved
// kmsg records, pastes in mail and chat), finding the carrier of each line
// on its own, so callers see one Record per kernel message whatever the
// source.
package kmsg
