// Package webhook is a Kubernetes mutating admission webhook that rewrites
// the images of a Pod being created to their patched refs, so that old
// base images get their backports when a pod uses them.
//
// It never blocks a pod: every image is resolved within one time budget
// (below the API server's webhook timeout), an image that cannot be
// patched in time keeps its original ref, and the pod is annotated with
// what happened (AnnotationResult) and the user warned. Deploy it with
// failurePolicy: Ignore, so an outage of the webhook itself does not block
// pods either. It speaks admission.k8s.io/v1 on the wire with its own small
// types, keeping client-go out of the binary.
package webhook
