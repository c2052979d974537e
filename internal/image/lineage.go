package image

import (
	"fmt"

	"podwarden/internal/image/lineage"
)

// LineagePatches converts the lineage file's patches with ids, in the
// order given, to the patches a Patcher applies; with no ids, every patch
// in file order. An id the file does not have is an error naming it.
func LineagePatches(l *lineage.Lineage, ids ...string) ([]Patch, error) {
	src := l.Patches
	if len(ids) > 0 {
		src = make([]*lineage.Patch, 0, len(ids))
		for _, id := range ids {
			p := l.Patch(id)
			if p == nil {
				return nil, fmt.Errorf("no patch %q in the lineage file", id)
			}
			src = append(src, p)
		}
	}
	out := make([]Patch, 0, len(src))
	for _, p := range src {
		ip := Patch{ID: p.ID, Description: p.Description, Run: p.Run}
		for _, f := range p.Files {
			ip.Files = append(ip.Files, File{Path: f.Path, Mode: f.Mode, UID: f.UID, GID: f.GID, Content: f.Content})
		}
		out = append(out, ip)
	}
	return out, nil
}

// PatchesThrough returns the patch id and every patch listed before it:
// the set a base has once id is the newest patch it received, which is
// what a backport of id applies.
func PatchesThrough(l *lineage.Lineage, id string) ([]Patch, error) {
	if l.Patch(id) == nil {
		return nil, fmt.Errorf("no patch %q in the lineage file", id)
	}
	var ids []string
	for _, p := range l.Patches {
		ids = append(ids, p.ID)
		if p.ID == id {
			break
		}
	}
	return LineagePatches(l, ids...)
}
