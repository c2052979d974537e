// Package termsafe makes text that a process, a pod or a log controls safe
// to print on a terminal: control characters, bidirectional overrides and
// invalid UTF-8 become `\xNN` escapes, the way dmesg prints them, so a
// process named "\x1b[2J" cannot clear an administrator's screen or make a
// line read backwards. Structured output (JSON, YAML) carries the true
// string instead; its encoder escapes it.
package termsafe
