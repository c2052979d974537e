package cgroup

// ShortIDLen is how many characters of a container id output shows:
// crictl's (truncatedIDLen), so an id from `podwarden` can be pasted into
// `crictl inspect`, which takes any unique prefix.
const ShortIDLen = 13

// ShortID is id cut to ShortIDLen bytes, the form every text output of
// podwarden prints; JSON carries the whole id.
func ShortID(id string) string {
	if len(id) > ShortIDLen {
		return id[:ShortIDLen]
	}
	return id
}

// ContainerLabel is how metrics and logs name a container, the same in
// every package that labels one (the agent's series and early action's
// join on it): its name where the runtime told it, else its id cut to
// ShortIDLen, else the last element of its cgroup path (a cgroup a
// runtime-less selector chose that is not named for a container id: a
// systemd service, a test cgroup).
func ContainerLabel(name, id, cgroupPath string) string {
	switch {
	case name != "":
		return name
	case id != "":
		return ShortID(id)
	}
	return Base(cgroupPath)
}
