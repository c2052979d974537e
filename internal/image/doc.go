// Package image patches pod base images in a registry without rebuilding
// or overwriting them.
//
// A backport Patch adds files to every known base image. Patcher.Patch
// reads which patches an image already has from its LabelPatches label
// (labels are inherited through FROM, so images built on a patched base
// carry it too), turns the missing file patches into one reproducible
// layer, appends it with go-containerregistry and pushes the result to a
// tag derived from the source digest and the patch set (see TargetTag).
// Base layers are never pulled: the registry already has them, and
// remote.Write skips or cross-repo mounts them.
//
// Tags are never overwritten: the target tag is checked before the push,
// written last (by the manifest PUT, after every blob), and re-read after a
// failed or racing push. Because the layer and the manifest are
// reproducible, two patchers racing on the same ref push the same digest.
package image
