// Package status is the reader behind `podwarden status`: it lists the
// agents through the API server and reads each one's /metrics through the
// pod proxy. It uses client-go, so only podwarden-cluster links it; the
// agent's Events go through internal/kubeevent, which does not.
package status
