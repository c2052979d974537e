// Package procevent owns the Linux process events connector (netlink
// NETLINK_CONNECTOR, CN_IDX_PROC): the kernel's multicast of every fork,
// exec, exit and uid/gid change on the host. The agent uses it to protect a
// new process in a target container the moment it forks or execs, instead
// of at the next scan.
//
// The kernel reports events only to subscribers in the initial user and PID
// namespaces and only through the host network namespace's connector:
// elsewhere Listen fails (ECONNREFUSED in another network namespace, no
// acknowledgement in another PID or user namespace). Before Linux 6.6
// joining the multicast group also needs CAP_NET_ADMIN. The kernel drops
// events when the reader falls behind; Lost counts those overruns and the
// caller must then rescan, so callers keep a periodic scan as a fallback.
//
// Decoding (parse) is split from the socket so that it is tested and fuzzed
// on hand-built datagrams without root.
package procevent
