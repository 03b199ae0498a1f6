# syntax=docker/dockerfile:1
# Multi-stage build: a static plxfs binary on a small Debian runtime with fuse3 and CA certificates.
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t plxfs .
#   docker run --rm --device /dev/fuse --cap-add SYS_ADMIN --security-opt apparmor:unconfined \
#     -v "$PWD/conns.yaml:/etc/plxfs/conns.yaml:ro" -v /etc/gcs:/etc/gcs:ro \
#     plxfs mount --config /etc/plxfs/conns.yaml /mnt/plx
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# make docker passes VERSION (git describe); without it plxfs reports the VCS revision the go
# command stamps, when .git is in the build context.
ARG VERSION=
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/plxfs ./cmd/plxfs

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends fuse3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && echo user_allow_other >> /etc/fuse.conf \
 && useradd --uid 1000 --create-home plxfs \
 && mkdir -p /mnt/plx /var/cache/plxfs && chown plxfs /mnt/plx /var/cache/plxfs
COPY --from=build /out/plxfs /usr/local/bin/plxfs
ENV XDG_CACHE_HOME=/var/cache
# Mounting needs CAP_SYS_ADMIN and /dev/fuse. As root plxfs mounts directly; as the plxfs user it
# uses fusermount3 (installed above). Storage commands and `plxfs init` need no privileges:
# run them with --user 1000.
ENTRYPOINT ["/usr/local/bin/plxfs"]
CMD ["--help"]
