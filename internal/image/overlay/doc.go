// Package overlay reads a saved overlayfs upper layer (a directory, or a
// tar of one) and finds the entries that would hide a patch's files when
// the layer is restored on top of a patched image: files and directories
// that replace them, whiteouts that delete them (overlayfs 0/0 character
// devices and OCI ".wh." files), opaque directories that hide everything
// below them, and non-directories standing where a parent directory should
// be.
package overlay
