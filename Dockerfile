# syntax=docker/dockerfile:1
#
# The schemagate image, ghcr.io/schemagate/schemagate: one static binary on distroless, as user
# 65532. `make image` builds it for this machine under the name and tag a release gives it:
#
#   docker build --build-arg VERSION=v1.2.3 --build-arg REVISION=$(git rev-parse HEAD) \
#     -t ghcr.io/schemagate/schemagate:1.2.3 .
#
# A release (.goreleaser.yaml) builds the same final stage for linux/amd64 and linux/arm64
# around the binaries it publishes and signs: it passes `--build-context build=DIR`, where DIR
# holds them at linux/amd64/schemagate and linux/arm64/schemagate, and a build context takes
# the place of the stage of the same name. So the build stage writes its binary to that same
# path, /${TARGETOS}/${TARGETARCH}/schemagate.
#
# The binary is /usr/local/bin/schemagate, so other images can take it:
#   COPY --from=ghcr.io/schemagate/schemagate:1 /usr/local/bin/schemagate /usr/local/bin/schemagate

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, in their own layer: it is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath \
      -ldflags "-s -w -X github.com/schemagate/schemagate.Version=${VERSION}" \
      -o /${TARGETOS}/${TARGETARCH}/schemagate ./cmd/schemagate

# CA certificates (sslmode=verify-full), /etc/passwd with user 65532, no shell.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
ARG TARGETOS
ARG TARGETARCH
LABEL org.opencontainers.image.title="schemagate" \
      org.opencontainers.image.description="One migrator per rollout: exactly one replica applies the database migrations, the others wait until the schema is ready." \
      org.opencontainers.image.source="https://github.com/schemagate/schemagate" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /${TARGETOS}/${TARGETARCH}/schemagate /usr/local/bin/schemagate
# Numeric, so that Kubernetes' runAsNonRoot can verify it. schemagate writes no file: the
# image runs with a read-only root filesystem.
USER 65532:65532
# 9090: serve's probes and metrics (--listen). 9091: Raft (--raft-listen), with --lock raft.
EXPOSE 9090 9091
# Only for images that run `schemagate serve` under Docker or Swarm (Kubernetes ignores it):
# HEALTHCHECK --interval=5s --timeout=3s --start-period=20m CMD ["schemagate", "probe", "--timeout", "2s"]
ENTRYPOINT ["/usr/local/bin/schemagate"]
CMD ["--help"]
