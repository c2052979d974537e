# podwarden build and test entry points. `make ci` is what .ci/run calls and
# what README.md names as the full test suite.
SHELL     := /bin/bash
GO        ?= go
BIN       := bin/podwarden
GOBIN     := $(shell $(GO) env GOPATH)/bin
STATICCHECK_VERSION := v0.8.2
ACTIONLINT_VERSION := v1.7.12
# Stamped into every binary (--version, `podwarden version`, the agent's
# build info): the nearest tag, commits since, the commit, "-dirty" for
# uncommitted changes; the commit alone while the repository has no tag.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X podwarden/internal/cli.version=$(VERSION)
# The image `make image` builds and the chart's default image.repository
# (values.yaml); set IMAGE to push to your own registry.
IMAGE     ?= ghcr.io/podwarden/podwarden:$(VERSION)
PKGS      := ./...
# Built tools the end-to-end tests use (kube-apiserver, etcd, buildkitd),
# kept outside the clone so CI and later runs reuse them; keyed by version.
CACHE     ?= /var/cache/podwarden
export PODWARDEN_KUBE_BIN_DIR ?= $(CACHE)/kube
export PODWARDEN_BUILDKITD ?= $(CACHE)/buildkit/buildkitd-v0.34.2

.PHONY: all build static image deps deps-node lint test test-short test-stress test-vm test-node fuzz bench ci clean

all: build

# podwarden is the small node tool; podwarden-agent adds agent and nri (the
# DaemonSet's binary), podwarden-cluster image and status. podwarden runs
# the other two for their commands from the same directory. podwarden-build
# is the BuildKit helper of `image build` and RUN patches (its own module).
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/podwarden
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/podwarden-agent ./cmd/podwarden-agent
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/podwarden-cluster ./cmd/podwarden-cluster
	cd internal/image/buildkit && $(GO) build -o $(CURDIR)/bin/podwarden-build ./cmd/podwarden-build

# The DaemonSet's binary as the container image has it (static, stripped).
static:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o bin/podwarden-agent-static ./cmd/podwarden-agent

# The agent's container image, built offline by internal/agentimage (the
# same recipe the node test runs): the static podwarden-agent alone in a
# scratch-like OCI image, reproducible (SOURCE_DATE_EPOCH or the epoch).
# Writes bin/podwarden-image.tar tagged $(IMAGE) (docker load / ctr images
# import); PUSH=1 also pushes it to $(IMAGE) with Docker's credentials.
# Then install the chart with image.repository and image.tag set to it
# (docs/kubernetes.md).
image:
	$(GO) run ./hack/agentimage -o bin/podwarden-image.tar -t $(IMAGE) -version $(VERSION) $(if $(PUSH),-push $(IMAGE))

# A release in dist/ (docs/kubernetes.md, "Install"), VERSION a vX.Y.Z tag:
# podwarden_<X.Y.Z>_linux_{amd64,arm64}.tar.gz (podwarden, podwarden-agent,
# podwarden-cluster static, README.md), the agent image as a linux/amd64 +
# linux/arm64 OCI layout (dist/podwarden-image), the chart
# podwarden-<X.Y.Z>.tgz pinned to that image by digest, an SPDX SBOM per
# binary and for the image, SHA256SUMS. Reproducible: the commit's time
# stands for SOURCE_DATE_EPOCH unless that is set. PUSH=1 pushes the image
# to $(REGISTRY)/podwarden:<VERSION> and the chart to
# oci://$(REGISTRY)/charts/podwarden with Docker's credentials and lists both
# by digest in dist/pushed.txt. COSIGN_KEY=cosign.key (from `cosign
# generate-key-pair`, password in COSIGN_PASSWORD) signs both by digest as
# `cosign sign --key` does, no transparency log (verify with --key and
# --insecure-ignore-tlog); without it nothing is signed here and
# .github/workflows/release.yml signs them keyless (the forge's OIDC identity).
REGISTRY  ?= ghcr.io/podwarden
.PHONY: release
release:
	rm -rf dist
	$(GO) run ./hack/release -version $(VERSION) -registry $(REGISTRY) -o dist $(if $(PUSH),-push)

# Installs what the tests need on a fresh Debian machine (root).
deps:
	./hack/install-deps.sh
	KUBE_BIN_DIR=$(PODWARDEN_KUBE_BIN_DIR) ./hack/kube-bins.sh
	BUILDKIT_DIR=$(CACHE)/buildkit ./hack/buildkitd.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) mod tidy -diff || { echo "go.mod/go.sum not tidy: run go mod tidy"; exit 1; }
	cd internal/image/buildkit && $(GO) mod tidy -diff || { echo "internal/image/buildkit: go.mod/go.sum not tidy"; exit 1; }
	$(GO) vet $(PKGS)
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(GOBIN)/staticcheck $(PKGS)
	cd internal/image/buildkit && $(GO) vet ./... && $(GOBIN)/staticcheck ./...
	$(GO) run github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

# Unit and integration tests. Tests that need root, a real cgroup tree, qemu
# or a registry skip with a message when those are missing; `make deps`
# installs them so CI runs everything.
test:
	$(GO) test -count=1 -timeout 60m $(PKGS)
	cd internal/image/buildkit && $(GO) test -count=1 -timeout 20m ./...

test-short:
	$(GO) test -short -count=1 $(PKGS)

# The packages with live (real processes, cgroups, sockets, servers) or
# timing-dependent tests, three times each while hack/load.sh keeps both
# cores busy and forks hundreds of processes a second beside them: CI runs
# on busy machines, and a test that fails under load fails changes at random.
STRESS_PKGS := ./internal/procevent ./internal/cgwatch ./internal/procfs \
	./internal/cgroup ./internal/snapshot ./internal/agent ./internal/nri \
	./internal/cri ./internal/kmsg ./internal/oomreport ./internal/kubeevent \
	./internal/cli ./internal/image/webhook ./internal/preempt ./cmd/...
# Then the pressure scenarios once under the same load (issue 19: the hard
# shapes must hold on a busy host too): the TCG guests slow down with the
# host, several times over; the verdicts must not change. Its table is
# printed at the end; the exit status is go test's.
test-stress: static
	hack/load.sh $(GO) test -count=3 -timeout 60m $(STRESS_PKGS)
	PODWARDEN_BIN=$(CURDIR)/bin/podwarden-agent-static hack/load.sh $(GO) test -count=1 -timeout 120m -v -run TestPressure ./internal/vmtest/ >/tmp/podwarden-stress-pressure.log 2>&1; \
		rc=$$?; grep -E '^(PRESSURE|pressure|--- FAIL)' /tmp/podwarden-stress-pressure.log; exit $$rc

# The real-kernel scenario suite (qemu guest with cgroup v2 + this host's v1),
# and the pressure scenarios (kernel alone, earlyoom, podwarden --preempt).
test-vm: static
	PODWARDEN_BIN=$(CURDIR)/bin/podwarden-agent-static $(GO) test -count=1 -timeout 60m -v -run 'TestScenario|TestPressure|TestArm64' ./internal/vmtest/ | tee /tmp/podwarden-vmtest.log; \
	  rc=$${PIPESTATUS[0]}; grep -E '^(SCENARIO|scenario|PRESSURE|pressure)' /tmp/podwarden-vmtest.log; exit $$rc

# What the node test adds to deps: kubelet, kube-controller-manager and
# kube-scheduler (hack/kube-bins.sh, one at a time: 2-3 GB of RAM each),
# containerd 2 (hack/containerd.sh), cached under $(CACHE) by version.
deps-node: deps
	KUBE_BIN_DIR=$(PODWARDEN_KUBE_BIN_DIR) ./hack/kube-bins.sh kubelet kube-controller-manager kube-scheduler
	CONTAINERD_DIR=$(CACHE)/containerd ./hack/containerd.sh

# A real Kubernetes node (kubelet, containerd, runc) in the qemu cgroup v2
# guest, this tree's release pushed to a docker-registry on loopback and
# installed from it with Helm (chart over OCI, image by digest), and the
# previous release (a commit's own `make release`) upgraded from: issues
# 16, 19 and 22's scenarios (internal/nodetest, docs/kubernetes.md).
test-node: deps-node
	PODWARDEN_NODETEST=1 PODWARDEN_CONTAINERD_DIR=$(CACHE)/containerd $(GO) test -count=1 -timeout 40m -v -run TestNode ./internal/nodetest/ 2>&1 | tee /tmp/podwarden-nodetest.log; exit $${PIPESTATUS[0]}

# Short fuzz runs of every fuzz target (the corpus under testdata/fuzz is
# replayed by plain `go test`).
FUZZTIME ?= 10s
fuzz:
	@for pkg in $$($(GO) list ./internal/...); do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# podwarden-cluster status against a real kube-apiserver holding N nodes and
# agent pods, with fake agents on the pods' IPs (TestStatusScale, in a
# network namespace of its own; root, make deps): wall time, status's RSS
# and CPU, and the API server's CPU per node, for each N of STATUS_NODES
# (docs/kubernetes.md). Full logs in bin/bench-status-N.log.
STATUS_NODES ?= 100 1000 5000
.PHONY: bench-status
bench-status:
	@mkdir -p bin; set -o pipefail; for n in $(STATUS_NODES); do \
	  echo "status at $$n nodes"; \
	  PODWARDEN_STATUS_NODES=$$n $(GO) test -count=1 -timeout 60m -run '^TestStatusScale$$' -v ./cmd/podwarden-cluster/ \
	    | tee bin/bench-status-$$n.log | grep -E 'figures:|created in|named unreadable|^(--- )?FAIL' || exit 1; \
	done

# Everything `deps lint test test-node` runs, with the source builds of a
# first run in the background while lint and the tests that need none of
# them run (hack/ci.sh says how the split is checked).
ci:
	GO=$(GO) MAKE=$(MAKE) CACHE=$(CACHE) ./hack/ci.sh

clean:
	rm -rf bin
