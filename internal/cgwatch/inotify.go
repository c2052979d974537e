package cgwatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// inotifyHdrLen is sizeof(struct inotify_event) without its name: wd,
// mask, cookie, len (linux/inotify.h).
const inotifyHdrLen = 16

// errMalformed marks a read that does not follow the kernel's layout.
var errMalformed = errors.New("malformed inotify read")

// rawEvent is one struct inotify_event.
type rawEvent struct {
	wd   int32
	mask uint32
	name string // the entry in the watched directory; empty for events on the directory itself
}

// parseEvents decodes the events in one read from an inotify descriptor,
// appending to dst. The kernel never splits an event across reads, so a
// partial event is an error; the events before it are returned.
func parseEvents(dst []rawEvent, b []byte) ([]rawEvent, error) {
	ne := binary.NativeEndian
	for len(b) > 0 {
		if len(b) < inotifyHdrLen {
			return dst, fmt.Errorf("%w: %d trailing bytes", errMalformed, len(b))
		}
		nameLen := int(ne.Uint32(b[12:]))
		if nameLen > len(b)-inotifyHdrLen {
			return dst, fmt.Errorf("%w: name of %d bytes in %d", errMalformed, nameLen, len(b)-inotifyHdrLen)
		}
		// The name is NUL-padded to an alignment boundary.
		name := b[inotifyHdrLen : inotifyHdrLen+nameLen]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		dst = append(dst, rawEvent{
			wd:   int32(ne.Uint32(b[0:])),
			mask: ne.Uint32(b[4:]),
			name: string(name),
		})
		b = b[inotifyHdrLen+nameLen:]
	}
	return dst, nil
}
