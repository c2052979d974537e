// Package policy owns podwarden's configuration and the pure decisions made
// from it: which pods are targets, what memory.oom.group mode and
// oom_score_adj each target gets (after its podwarden.dev annotations), and
// which host processes are protected at what adj.
//
// Nothing here touches the host: Decide and ProtectHost take what the agent
// read and return what it should write, so every rule is a table test. The
// only I/O is Load reading the config file. Parse rejects unknown keys and
// bad values with "file:LINE: field: problem", so a typo fails at start
// instead of silently leaving nodes unprotected.
//
// docs/policy.md documents every key; deploy/examples/policy.yaml is the
// example, and a test loads it.
package policy
