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
