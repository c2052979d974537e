// Package lineage reads the lineage file of pod base images: image
// families, each version's base and increment (Dockerfile instructions),
// and the backport patches every known base must receive.
//
// Parse keeps the line of every YAML node, so a bad file is rejected with
// the line at fault, in the form
//
//	lineage.yaml:12: families.base.versions[2].from: unknown version "v9"
//
// Dockerfile renders the merged from-scratch Dockerfile of a version, for
// reference only: pod base images are built incrementally and never again
// from scratch.
package lineage
