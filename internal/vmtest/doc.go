// Package vmtest runs podwarden's real-kernel scenarios: it packs busybox,
// the static podwarden binary and shell scenarios into an initramfs, boots
// Debian's kernel under qemu with cgroup v2, and reads structured results
// back from the serial console.
//
// Each scenario runs twice: in mode "k8s" the cgroups and oom_score_adj
// values are what Kubernetes ships (memory.oom.group=1, -997), in mode
// "podwarden" the agent runs beside them. The scenarios are the package's
// tests (TestScenario*); the kernel decides who dies, so the suite proves
// what unit tests against fixture trees cannot. docs/vmtest.md says what
// each scenario proves.
package vmtest
