# schemagate — build, test, benchmark.
#
#   make demo    three real rollouts, narrated (SQLite; DATABASE_URL=postgres://… or
#                DEMOFLAGS=--postgres for PostgreSQL)
#   make build   static binary in bin/schemagate
#   make test    go vet, gofmt check, and every test under the race detector, against
#                PostgreSQL at SCHEMAGATE_TEST_DATABASE_URL (default
#                postgres://postgres@127.0.0.1:5432/postgres); when nothing answers there
#                and the server binaries are installed (pg_config --bindir), against a
#                throwaway server started for the run (internal/pgtest/testdb). Some tests
#                need root for iptables, and pgbouncer on PATH
#   make bench   the herd, wake-up, failover, serve and Raft benchmarks
#   make image   the container image, ghcr.io/schemagate/schemagate:<version> as a release tags
#                it, for this machine (needs docker or podman)
#   make release-check  validate .goreleaser.yaml with GoReleaser's own check
#   make soak    200 randomized rollouts with injected faults; invariants checked after each
#   make vulncheck  govulncheck over the module (skipped when its database is unreachable)

GO      ?= go
BIN     := bin/schemagate
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/schemagate/schemagate.Version=$(VERSION)
# The image's name and tag are the release's (.goreleaser.yaml) and the chart's: the tag is the
# version without its "v", as the chart's appVersion writes it.
IMAGE     ?= ghcr.io/schemagate/schemagate
IMAGE_TAG ?= $(patsubst v%,%,$(VERSION))
# The GoReleaser the release workflow runs.
GORELEASER_VERSION := v2.17.0

.PHONY: build test vet fmt-check bench image release-check soak vulncheck demo clean

# A container engine for `make image`: docker, else podman.
ENGINE  ?= $(shell command -v docker 2>/dev/null || command -v podman 2>/dev/null)

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/schemagate

vet:
	$(GO) vet ./...
	cd bench && $(GO) vet ./...
	cd deploy && $(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

test: vet fmt-check
	$(GO) run ./internal/pgtest/testdb -- $(GO) test -race -count=1 -timeout 75m ./...
	cd deploy && $(GO) test -race -count=1 -timeout 15m ./...

bench:
	cd bench && $(GO) run . $(BENCHFLAGS)

# govulncheck needs its database at vuln.go.dev; where that cannot be reached it says so and
# the target passes, so that an offline build is not red for want of a network.
vulncheck:
	@$(GO) install golang.org/x/vuln/cmd/govulncheck@v1.9.0
	@out=$$($$($(GO) env GOPATH)/bin/govulncheck ./... 2>&1); rc=$$?; \
	if [ $$rc -ne 0 ] && echo "$$out" | grep -q "fetching vulnerabilities"; then \
		echo "govulncheck: vulnerability database unreachable; skipped ($$(echo "$$out" | tail -n1))"; \
	else echo "$$out"; exit $$rc; fi

demo:
	$(GO) run ./internal/demo $(DEMOFLAGS)

soak:
	$(GO) run ./internal/soak -rounds 200 $(SOAKFLAGS)

image:
	@test -n "$(ENGINE)" || { echo "make image needs docker or podman"; exit 1; }
	$(ENGINE) build --build-arg VERSION=$(VERSION) --build-arg REVISION=$$(git rev-parse HEAD) -t $(IMAGE):$(IMAGE_TAG) .

release-check:
	$(GO) run github.com/goreleaser/goreleaser/v2@$(GORELEASER_VERSION) check

clean:
	rm -rf bin
