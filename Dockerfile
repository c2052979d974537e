# podwarden image: a static Go binary on distroless.
#
#   make image IMAGE=registry.example.com/podwarden:v0.1.0   (stamps VERSION from git)
#   docker build --build-arg VERSION=v0.1.0 -t registry.example.com/podwarden:v0.1.0 .
#
# Needs a container engine (Docker/BuildKit, Podman, Buildah). No
# "# syntax=" line, so it builds offline with the engine's built-in frontend.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# No separate "go mod download" layer: it would fetch every module in
# go.mod, including the test-only Helm library (~280 modules) that never
# reaches the binary; go build fetches only what ./cmd/podwarden-agent imports.
COPY go.mod go.sum ./
COPY cmd/ cmd/
COPY internal/ internal/
ARG VERSION=dev
# Static (CGO_ENABLED=0): distroless/static has no libc.
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X podwarden/internal/cli.version=${VERSION}" \
      -o /out/podwarden ./cmd/podwarden-agent

# The root variant of distroless/static, not :nonroot. The agent must run
# as uid 0: the cgroup files it writes (memory.oom.group) are owned by
# root, and the capabilities the chart grants (SYS_RESOURCE, DAC_OVERRIDE,
# SYS_PTRACE, NET_ADMIN, SYSLOG) are only in effect for a root process; a
# non-root process would need file capabilities, which a no-new-privileges
# container cannot gain. The NRI plugin runs as root too: the runtime's
# socket directory is root-only. Everything else is taken away by the pod's
# securityContext (all other capabilities dropped, read-only root
# filesystem, seccomp RuntimeDefault). Pin the digest when releasing.
FROM gcr.io/distroless/static-debian12:latest
COPY --from=build /out/podwarden /podwarden
USER 0:0
ENTRYPOINT ["/podwarden"]
CMD ["agent"]
