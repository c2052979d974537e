// Package procevent subscribes to the Linux process connector (netlink
// NETLINK_CONNECTOR, CN_IDX_PROC): a kernel multicast of every fork, exec
// and exit on the host. The agent uses it to protect a new process in a
// target container the moment it execs, instead of at the next scan.
//
// It needs CAP_NET_ADMIN in the host's network and PID namespaces; in a new
// network namespace the subscription is refused, in a new PID namespace it
// is silently empty, so callers keep a periodic scan as a fallback.
package procevent
