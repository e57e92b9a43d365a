# One image runs both `chainsync manager` and `chainsync cycle`.
#
# Base images carry a tag, which says what they are, and the digest of that tag's multi-platform
# index, which fixes the bytes: the registries rebuild a tag in place (Debian fixes), and a digest
# cannot be moved to different content. To update one, change tag and digest together, reading the
# digest with `docker buildx imagetools inspect <image>:<tag>`. hack/verify checks every FROM is pinned.

# golang:1.26.8 is the Go of go.mod's 1.26 line (the image sets GOTOOLCHAIN=local, so it builds
# with exactly this release).
FROM golang:1.26.8@sha256:3c3e25a4da13fd0478eed2df1eb35a0e667094a7124d3993a6a1d30f71c17e79 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags=-s -o /out/chainsync .

# Static binary, no shell, non-root. Not at /chainsync: cycle pods mount their volumes under
# /chainsync/ (internal/jobargs), and a runtime cannot create a mount point inside a file.
# cycle_job.go runs the same path; internal/containerrunner's test runs both as a pod would.
FROM gcr.io/distroless/static-debian12:nonroot@sha256:f5b485ea962d9bd1186b2f6b3a061191539b905b82ec395de78cbfae51f20e35
COPY --from=build /out/chainsync /usr/local/bin/chainsync
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/chainsync"]
