# One image runs both `chainsync manager` and `chainsync cycle`.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags=-s -o /out/chainsync .

# Static binary, no shell, non-root.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/chainsync /chainsync
USER 65532:65532
ENTRYPOINT ["/chainsync"]
